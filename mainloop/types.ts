/**
 * The event-loop contract that devices, the aio pool and iothreads program
 * against (QEMU's AioContext / main-loop.h). `MainLoop` and `IOThread`
 * implement it; callbacks always run on the loop's own thread.
 *
 * @module
 */

/**
 * Callbacks for an fd; level-triggered like QEMU's `qemu_set_fd_handler`.
 *
 * @example
 * ```ts
 * import type { EventLoop, FdHandlers } from "./types.ts";
 * export function watch(loop: EventLoop, fd: number, onReadable: () => void): void {
 *   const handlers: FdHandlers = { read: onReadable };
 *   loop.setFdHandler(fd, handlers);
 * }
 * ```
 */
export interface FdHandlers extends CallbackOptions {
  /** Called while the fd is readable. */
  read?: (() => void) | null;
  /** Called while the fd is writable. */
  write?: (() => void) | null;
}

/**
 * What a loop may assume of a callback.
 *
 * @example
 * ```ts
 * import type { EventLoop } from "./types.ts";
 * export function onKick(loop: EventLoop, fd: number, process: () => void): void {
 *   // Device code: plain calls, no promise anywhere on the way.
 *   loop.setFdHandler(fd, { read: process, sync: true });
 * }
 * ```
 */
export interface CallbackOptions {
  /**
   * The callback starts no promise reactions: it resolves no promise and
   * calls no async function, and neither does anything it calls. An
   * iteration that ran only such callbacks sleeps again at once, without the
   * awaits that otherwise let reactions a callback started run first (each
   * allocates), so a device's hot path (a queue kick, a completion) costs the
   * loop no heap. Default false: reactions a callback starts run before the
   * loop sleeps.
   */
  sync?: boolean;
}

/**
 * A transferable reference to a bottom half: post it to any Worker and build a
 * `SharedBh` (mainloop/bh.ts) there to schedule the BH without postMessage.
 *
 * @example
 * ```ts
 * import type { BhHandle, EventLoop } from "./types.ts";
 * export function handOut(loop: EventLoop, worker: Worker): void {
 *   const handle: BhHandle = loop.bh(() => console.log("ping")).handle();
 *   worker.postMessage(handle);
 * }
 * ```
 */
export interface BhHandle {
  /** The loop's shared state (pending bits and notify flag). */
  state: SharedArrayBuffer;
  /** The loop's notify eventfd. */
  fd: number;
  /** The BH's bit. */
  index: number;
}

/**
 * A bottom half: a callback scheduled to run once on the loop, soon.
 *
 * @example
 * ```ts
 * import type { Bh, EventLoop } from "./types.ts";
 * export function coalesced(loop: EventLoop, flush: () => void): Bh {
 *   return loop.bh(flush, "flush"); // schedule() it as often as you like
 * }
 * ```
 */
export interface Bh {
  /** Schedules it (idempotent until it runs). Safe from the loop's thread. */
  schedule(): void;
  /** Unschedules it if pending. */
  cancel(): void;
  /** Cancels and frees it. */
  delete(): void;
  /** A handle other threads use to schedule it (see `SharedBh`). */
  handle(): BhHandle;
}

/**
 * Clocks timers can run on.
 *
 * @example
 * ```ts
 * import type { ClockType } from "./types.ts";
 * const clock: ClockType = "monotonic";
 * console.log(clock);
 * ```
 */
export type ClockType = "realtime" | "host" | "monotonic" | "virtual";

/**
 * A timer on a loop; fires once per `mod`.
 *
 * @example
 * ```ts
 * import type { EventLoop, Timer } from "./types.ts";
 * export function every(loop: EventLoop, ms: number, tick: () => void): Timer {
 *   const t: Timer = loop.timer("monotonic", () => {
 *     tick();
 *     t.mod(loop.now("monotonic") + ms * 1e6);
 *   });
 *   t.mod(loop.now("monotonic") + ms * 1e6);
 *   return t;
 * }
 * ```
 */
export interface Timer {
  /** Arms (or re-arms) the timer to fire at `expireNs` on its clock. */
  mod(expireNs: number): void;
  /** Disarms it. */
  del(): void;
  /** Whether it is armed. */
  readonly pending: boolean;
}

/**
 * An event loop: fds, timers, bottom halves.
 *
 * @example
 * ```ts
 * import type { EventLoop } from "./types.ts";
 * export function later(loop: EventLoop, fn: () => void): void {
 *   const bh = loop.bh(() => {
 *     bh.delete();
 *     fn();
 *   });
 *   bh.schedule();
 * }
 * ```
 */
export interface EventLoop {
  /** Registers (or with null, removes) handlers for fd. */
  setFdHandler(fd: number, handlers: FdHandlers | null): void;
  /** Creates a bottom half running cb on this loop. */
  bh(cb: () => void, name?: string, options?: CallbackOptions): Bh;
  /** Creates a timer running cb on this loop. */
  timer(clock: ClockType, cb: () => void, options?: CallbackOptions): Timer;
  /** Current time on a clock, in ns. */
  now(clock: ClockType): number;
  /** Wakes the loop from poll (any thread). */
  notify(): void;
}
