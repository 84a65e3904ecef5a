/**
 * What Deno's event loop has to do that its epoll fd does not announce, as
 * the main loop needs to know it when it sleeps on its own thread beside
 * that fd (main_loop.ts, `watchDeno`). Measured on Deno 2.9.6: a Worker's
 * message, a finished blocking-pool call and a new timer make the fd
 * readable; a timer coming due does not (tokio's timers are the timeout of
 * its epoll_wait), an `Atomics.waitAsync` being notified does not, and an
 * async op called from JavaScript is not even started before Deno's next
 * turn.
 *
 * So the loop used to give Deno a turn every 10 ms while active, each
 * costing tens of µs of CPU natively with the wake-ups around it and 1-2 ms
 * under TCG: nearly all of the main thread's CPU during a guest's ping in the
 * nested host (41.5 ms per 200 ms against QEMU's 3.5 ms:
 * bench/net_ping_cpu_bench.ts). Instead:
 *
 * - **Timers are tracked.** {@link watchDenoTimers} wraps this isolate's
 *   `setTimeout`/`setInterval`/`clearTimeout`/`clearInterval` (the timers
 *   returned stay Deno's, so `Deno.unrefTimer` still works) to keep each
 *   live timer's due time; the loop turns when the earliest is due.
 * - **Waits are announced.** Code that awaits something only a turn can
 *   deliver (`Atomics.waitAsync`) wraps the promise in {@link awaitDeno};
 *   while one is pending the loop turns at its short period.
 * - **The rest is bounded.** Timers that bypass the globals (`node:timers`,
 *   `AbortSignal.timeout`, a `Timeout`'s `refresh()`) and async ops started
 *   from JavaScript on this thread wait at most the loop's `untrackedYieldNs`
 *   (`yieldNs`, 10 ms, by default; 200 ms in the CLI, whose main thread
 *   runs only the VMM's code, which starts none).
 *
 * Module state is per isolate (per thread), as the loop it serves.
 *
 * @module
 */

import { traceMark } from "../sys/start_trace.ts";
import { loopNowMsInto } from "./clock.ts";

type Callback = (...args: unknown[]) => unknown;
/** Deno 2.9 returns Node-style `Timeout` objects; their number (`+t`) clears them too. */
type TimerId = unknown;
type SetTimer = (cb: Callback, ms?: number, ...args: unknown[]) => TimerId;
type ClearTimer = (id?: TimerId) => void;

/** Live timers that went through the wrappers: `+id` → due, `performance.now()` ms. */
const due = new Map<number, number>();
/**
 * [0]: the earliest of `due` (Infinity if none), valid unless `stale`. In an
 * array: a double stored in a module variable is a new heap number each time.
 */
const earliest = new Float64Array([Infinity]);
/** A clock read (loopNowMsInto: no heap number per read). */
const clock = new Float64Array(1);
let stale = false;
/** Pending {@link awaitDeno} promises. */
let waits = 0;
let installed = false;

/** Longest delay the wrappers track; longer ones are passed through as they are. */
const MAX_DELAY_MS = 0x7fffffff;
/**
 * A tracked timer this long overdue is dropped: a clear or a reschedule the
 * wrappers did not see (Node's `timeout.close()`/`refresh()`, a reference to
 * the original `clearTimeout` taken before them) would otherwise ask for a
 * turn every millisecond. A timer really that late (its thread was blocked)
 * still fires at the loop's `untrackedYieldNs`.
 */
const OVERDUE_MS = 100;

function note(id: number, at: number): void {
  const old = due.get(id);
  due.set(id, at);
  if (at < earliest[0]) earliest[0] = at;
  else if (old !== undefined && old <= earliest[0]) stale = true;
}

function forget(id: number): void {
  const old = due.get(id);
  if (old === undefined) return;
  due.delete(id);
  if (old <= earliest[0]) stale = true;
}

let now = 0;
function keepEarliest(at: number, id: number): void {
  if (at < now - OVERDUE_MS) due.delete(id);
  else if (at < earliest[0]) earliest[0] = at;
}

/** A delay as Deno takes it (NaN and negatives are 0), or -1 when not tracked. */
function delayOf(ms: unknown): number {
  const d = Number(ms ?? 0);
  if (!(d > 0)) return 0;
  return d <= MAX_DELAY_MS ? d : -1;
}

/** `set` (Deno's setTimeout or setInterval) wrapped to keep the timer's due time. */
function tracked(set: SetTimer, repeats: boolean): SetTimer {
  return function (cb: unknown, ms?: unknown, ...args: unknown[]): TimerId {
    const d = delayOf(ms);
    if (typeof cb !== "function" || d < 0) return set(cb as Callback, ms as number, ...args);
    const fn = cb as Callback;
    let key = NaN;
    const id = set(function fire(this: unknown) {
      if (repeats) note(key, performance.now() + d);
      else forget(key);
      return fn.apply(this, args);
    }, d);
    key = Number(id);
    note(key, performance.now() + d);
    return id;
  };
}

/**
 * Wraps this isolate's timer functions so that {@link nextTimerDue} knows
 * when Deno's timers come due. Idempotent. Timers made before the call (or
 * through references taken before it) are not tracked.
 *
 * Deno loads its timers (Node's, since 2.x) on the first read of any of
 * these globals: ~20 ms natively in each isolate, a second or more under the
 * nested host's emulator. So the wrappers take Deno's functions on their own
 * first read too, not here: a VMM that arms no timer before its first
 * `KVM_RUN` does not pay that on the way to it.
 */
export function watchDenoTimers(): void {
  if (installed) return;
  installed = true;
  wrapOnFirstRead("setTimeout", (setT) => tracked(setT as SetTimer, false));
  wrapOnFirstRead("setInterval", (setI) => tracked(setI as SetTimer, true));
  // Either clears either kind, as in browsers and Deno.
  wrapOnFirstRead("clearTimeout", (clearT) =>
    function clearTimeout(id?: TimerId): void {
      forget(Number(id));
      (clearT as ClearTimer)(id);
    });
  wrapOnFirstRead("clearInterval", (clearI) =>
    function clearInterval(id?: TimerId): void {
      forget(Number(id));
      (clearI as ClearTimer)(id);
    });
}

let timersRead = false;

/**
 * Whether this isolate's timer globals were read since
 * {@link watchDenoTimers} (which loads Deno's timers).
 *
 * @returns true after the first read of a wrapped timer global
 */
export function denoTimersRead(): boolean {
  return timersRead;
}

/**
 * Makes the global `name` an accessor that reads Deno's own value once, on
 * its first read, and returns `wrap` of it from then on; an assignment
 * replaces it, as with the original property.
 */
function wrapOnFirstRead(name: string, wrap: (original: unknown) => unknown): void {
  const g = globalThis as unknown as Record<string, unknown>;
  const d = Object.getOwnPropertyDescriptor(g, name);
  if (d === undefined || !d.configurable) {
    g[name] = wrap(g[name]);
    return;
  }
  let value: unknown;
  let taken = false;
  Object.defineProperty(g, name, {
    configurable: true,
    enumerable: d.enumerable,
    get() {
      if (!taken) {
        taken = true;
        timersRead = true;
        value = wrap(d.get ? d.get.call(g) : d.value);
        traceMark(`Deno's timers loaded (first read of ${name})`);
      }
      return value;
    },
    set(v: unknown) {
      taken = true;
      value = v;
    },
  });
}

/** Recomputes the earliest due time when a change or an overdue timer asks. */
function refreshEarliest(): void {
  loopNowMsInto(clock, 0);
  if (stale || earliest[0] < clock[0] - OVERDUE_MS) {
    stale = false;
    earliest[0] = Infinity;
    now = clock[0];
    due.forEach(keepEarliest);
  }
}

/**
 * When the earliest tracked Deno timer is due.
 *
 * @returns `performance.now()` milliseconds; Infinity when none is pending
 */
export function nextTimerDue(): number {
  refreshEarliest();
  return earliest[0];
}

/**
 * {@link nextTimerDue}, written into `out[at]`: the main loop reads it every
 * iteration, and a double returned would be a new heap number each time.
 *
 * @param out where the answer goes
 * @param at the index in `out`
 */
export function nextTimerDueInto(out: Float64Array, at: number): void {
  refreshEarliest();
  out[at] = earliest[0];
}

/**
 * Tells the main loop that this thread awaits something only a turn of
 * Deno's event loop delivers (an `Atomics.waitAsync`), until `p` settles.
 *
 * @param p the promise awaited
 * @returns `p`'s outcome
 * @example
 * ```ts
 * import { awaitDeno } from "./deno_work.ts";
 * const words = new Int32Array(new SharedArrayBuffer(4));
 * const w = Atomics.waitAsync(words, 0, 0, 10);
 * if (w.async) await awaitDeno(w.value);
 * ```
 */
export async function awaitDeno<T>(p: Promise<T>): Promise<T> {
  waits++;
  try {
    return await p;
  } finally {
    waits--;
  }
}

/**
 * Pending {@link awaitDeno} promises of this thread.
 *
 * @returns how many
 */
export function denoWaits(): number {
  return waits;
}
