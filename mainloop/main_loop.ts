/**
 * QEMU's main loop on Deno: one thread runs ppoll(2) over the registered fds,
 * then dispatches. All callbacks (fd handlers, BHs, timers) run on the thread
 * that called {@link MainLoop.run}, never concurrently with each other or
 * with other JS of that isolate.
 *
 * How it lives beside Deno's own event loop (timers, signals, Worker
 * messages, promises), which needs the same thread:
 * - **By default (`watchDeno`; any thread but an iothread):** the loop sleeps in a
 *   synchronous ppoll on its own thread, with the epoll fd of Deno's event
 *   loop in the set (sys/deno_reactor.ts). A cross-thread BH, an ioeventfd,
 *   a completion eventfd or a tap wakes it in one thread hop, busy or idle,
 *   as a thread blocked in poll(2) would. When Deno's fd turns readable (a
 *   Worker's message, a finished pool call, a signal) the loop gives Deno a
 *   turn; for what has no fd it turns when the earliest of Deno's timers is
 *   due, every `yieldNs` (10 ms) while an `Atomics.waitAsync` is announced,
 *   and otherwise every `untrackedYieldNs` (`yieldNs`; 200 ms in the CLI) for the rest
 *   (deno_work.ts), so an active VMM pays few turns. After
 *   `ownThreadNs` (1 s) with nothing to do it hands its wait to Deno's pool,
 *   as below, so an idle VMM pays no turns. Finding Deno's fd holds the
 *   thread ~5-15 ms: with `deferDenoProbe` (createVm's loop) the loop works
 *   as below until {@link MainLoop.watchDenoNow} (once the vCPUs run).
 * - **Otherwise (`watchDeno: false`, or the fd was not found):** after an iteration that
 *   dispatched anything it sleeps synchronously for up to `pollNs` (5 ms),
 *   yielding to Deno every `yieldNs` with a zero-timeout ppoll on Deno's
 *   blocking pool; idle longer, it waits on that pool, where a wake-up costs
 *   two hops (the pool thread, then this one). An iothread (`mailbox`) counts
 *   as always busy while no message is on its way to it.
 * Promise reactions do not wait for a turn: each iteration that dispatched
 * something ends with {@link MICROTASK_HOPS} awaits, so a chain of promise
 * reactions that a callback started (a resolve, then the awaiting async
 * functions up the caller's stack) runs before the loop sleeps. Longer chains
 * finish in Deno's next turn (JavaScript has no way to drain the microtask
 * queue from inside it, and the loop's own continuation is one of them).
 * Callbacks registered `sync` (types.ts `CallbackOptions`: a device's queue
 * kick, an aio completion) start none, and an iteration that ran only those
 * skips the awaits, which allocate (~340 bytes for the eight).
 *
 * One iteration, in this order (QEMU's aio_dispatch order):
 * 1. timeout = 0 if a BH is pending, else until the nearest timer on any
 *    clock, else infinite; poll with it (ns resolution), here or on Deno's
 *    pool as above, capped by Deno's hold. Before sleeping it re-arms the
 *    notifier (notifier.ts) and re-checks for pending BHs, so no wake-up is
 *    lost;
 * 2. bottom halves, in creation order (each scheduled one runs once);
 * 3. fd handlers, in registration order: `read` on POLLIN/POLLHUP/POLLERR,
 *    then `write` on POLLOUT/POLLERR (level-triggered: called again next
 *    iteration while the condition holds); handlers removed or replaced by an
 *    earlier callback of the same iteration are not called;
 * 4. expired timers, per clock in expiry order.
 *
 * Measured costs are in bench/mainloop_bench.ts.
 *
 * @module
 */
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, ppoll, ppollAsync } from "../sys/poll.ts";
import { BH_WORDS, BhTable } from "./bh.ts";
import { clockId, clockNs, loopNowMs, loopNowMsInto } from "./clock.ts";
import { EventNotifier } from "./notifier.ts";
import { viewAddress } from "../sys/address.ts";
import { denoReactorFd, denoTurn } from "../sys/deno_reactor.ts";
import { TimerGroup } from "./timer.ts";
import { denoWaits, nextTimerDueInto, watchDenoTimers } from "./deno_work.ts";
import { LoopStats } from "./loop_stats.ts";
import type { Bh, CallbackOptions, ClockType, EventLoop, FdHandlers, Timer } from "./types.ts";

export { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT } from "../sys/poll.ts";

/** Default {@link MainLoopOptions.pollNs}: 5 ms. */
export const DEFAULT_POLL_NS = 5_000_000;
/**
 * Default {@link MainLoopOptions.yieldNs}: 10 ms. Each turn given to Deno costs the
 * wake-ups around it (p50 wake-up 7.6 µs with 2 ms, 4.4 µs with 10 ms, against
 * 4.3 µs for a thread blocked in poll(2): bench/mainloop_bench.ts).
 */
export const DEFAULT_YIELD_NS = 10_000_000;

/**
 * {@link MainLoopOptions.untrackedYieldNs} for a process whose main thread
 * runs no JavaScript but the VMM's (the CLI: `main.ts`): 200 ms. Each turn
 * costs the main thread CPU (deno_work.ts): with a guest's kick every 200 ms,
 * natively, 0.6-1.0 ms of CPU per kick at 200 ms, 2.2-2.4 ms at 50 ms,
 * 5.0-6.6 ms with a turn every 10 ms (`net_ping_cpu_bench.ts --loop-only`).
 * The library's default stays `yieldNs`: a caller's own async I/O on the
 * loop's thread (a socket's `read()` after its `write()`) starts only in
 * Deno's next turn, and at 200 ms the VNC server test's client missed its
 * 600 ms handshake limit.
 */
export const CLI_UNTRACKED_YIELD_NS = 200_000_000;

/**
 * Default {@link MainLoopOptions.ownThreadNs}: 1 s, so that traffic at a
 * second's pace or faster (a ping a second, a console) wakes the loop in one
 * hop each time.
 */
export const DEFAULT_OWN_THREAD_NS = 1_000_000_000;

/**
 * Awaits after an iteration that dispatched anything: each lets every
 * reaction queued before it run, so chains up to this many steps finish
 * before the loop sleeps (a step costs ~0.1 µs when nothing waits).
 */
export const MICROTASK_HOPS = 8;

/**
 * Awaited by the microtask hops, inline in the loop: awaiting an existing
 * promise allocates no new one, and no async call wraps them. Heap growth
 * per iteration that dispatched an fd event, with no GC in between: ~1020
 * bytes with `await this.#settle()` of `await undefined`s, ~520 now.
 */
const SETTLED = Promise.resolve();

/** Slots of MainLoop's `#f`: the iteration's timeout and time, Deno's next turn, a sleep. */
const F_TIMEOUT = 0;
const F_NOW = 1;
const F_TURN_AT = 2;
const F_SLEEP = 3;
const F_SCRATCH = 4;

/**
 * More turns than this in {@link TURN_WINDOW_MS} (2,000 a second, each ~40
 * µs of this thread's CPU) and the loop turns through Deno's pool instead of
 * a MessageChannel, then stops watching Deno's fd: spinning through turns, a
 * wrongly found fd made ~50,000 a second, and Deno's Node layer ~2,400.
 */
const MAX_TURNS_PER_WINDOW = 200;
const TURN_WINDOW_MS = 100;
/** Windows in a row over the limit, with turns through the pool, before the loop gives up. */
const STORM_WINDOWS = 10;

/** The least time between two turns given for a due timer (ms). */
const TIMER_TURN_GAP_MS = 1;

interface FdRecord {
  fd: number;
  read: (() => void) | null;
  write: (() => void) | null;
  live: boolean;
  /** The handlers start no promise reactions (CallbackOptions.sync). */
  sync: boolean;
}

/** What an iteration's dispatch ran: nothing, only `sync` callbacks, or others too. */
const RAN_NOTHING = 0;
const RAN_SYNC = 1;
const RAN_ASYNC = 2;

/** Options for {@link MainLoop}. */
export interface MainLoopOptions {
  /** Name for diagnostics (`main`, `iothread-0`). */
  name?: string;
  /**
   * After an iteration that dispatched anything, keep sleeping on the loop's
   * own thread (a synchronous ppoll) for up to this long before going back to
   * ppoll on Deno's thread pool. A wake-up from another thread (an aio
   * completion BH, an ioeventfd kick) then costs one thread hop instead of
   * two. Like QEMU's poll-max-ns, but sleeping rather than spinning
   * (spinning starved the aio threads on a 2-core host), so a longer window
   * costs no CPU, only a hop through the pool every `yieldNs`. Default
   * {@link DEFAULT_POLL_NS}; 0 turns it off.
   */
  pollNs?: number;
  /**
   * The longest the loop holds its thread away from Deno's event loop
   * (timers, signals, Worker messages, promises) while busy or sleeping
   * synchronously. Default {@link DEFAULT_YIELD_NS}.
   */
  yieldNs?: number;
  /**
   * For a loop that owns its thread (an iothread Worker): word 0 counts the
   * messages on their way to this thread's Deno side. While it is 0 the loop
   * counts as always busy (it sleeps in ppoll on its own thread even when
   * idle, with a zero-timeout hop through Deno's pool every `yieldNs`), so
   * a wake-up from idle is one hop too; while it is not, the loop waits on
   * Deno's pool so that Deno can deliver and run them. A sender increments
   * it, posts, then wakes the loop (a BH); the receiver decrements it when
   * done.
   */
  mailbox?: Int32Array<SharedArrayBuffer>;
  /**
   * Sleep in the loop's own ppoll with Deno's event-loop fd in the set
   * (sys/deno_reactor.ts), giving Deno a turn when it has work and at least
   * every `yieldNs` for its timers, so a wake-up from another thread is one
   * hop even when idle. Default true where that fd is found, except with a
   * `mailbox` (an iothread keeps its own scheme); false keeps the `pollNs`
   * window and Deno's pool. Wraps the thread's timer functions to see when
   * Deno's timers are due (deno_work.ts).
   */
  watchDeno?: boolean;
  /**
   * @internal With `watchDeno`, the fd to take for Deno's instead of finding
   * it (sys/deno_reactor.ts): for tests.
   */
  denoFd?: number;
  /**
   * With `watchDeno`, look for Deno's fd only when {@link MainLoop.watchDenoNow}
   * is called, and until then loop as with `watchDeno: false`. Finding it
   * blocks the thread for ~5-15 ms (sys/deno_reactor.ts), which a VMM
   * starting up cannot spare: createVm's loop finds it once the vCPUs run.
   */
  deferDenoProbe?: boolean;
  /**
   * With `watchDeno`, the longest the loop holds its thread away from Deno
   * when no tracked timer is due and no wait is announced: how late a timer
   * that bypassed the timer globals (`node:timers`, `AbortSignal.timeout`)
   * or an async op started from JavaScript on this thread can be. Default
   * `yieldNs`; the CLI uses {@link CLI_UNTRACKED_YIELD_NS}.
   */
  untrackedYieldNs?: number;
  /**
   * With `watchDeno`, how long after the last dispatch the loop keeps
   * sleeping on its own thread; past it the wait goes to Deno's pool, so an
   * idle VMM pays no turns, and the first wake-up after the pause costs two
   * hops. Default {@link DEFAULT_OWN_THREAD_NS}.
   */
  ownThreadNs?: number;
}

/**
 * A poll() loop with fd handlers, timers and bottom halves. Create and run it
 * on the thread whose callbacks it should run; only `notify()` and BH handles
 * (see {@link SharedBh}) may be used from other threads.
 */
export class MainLoop implements EventLoop {
  /** Name for diagnostics. */
  readonly name: string;
  #notifier: EventNotifier;
  #bhs: BhTable;
  #timers = new TimerGroup();
  #fds = new Map<number, FdRecord>();
  #records: FdRecord[] = [];
  #dirty = true;
  #pollBuf = new ArrayBuffer(8);
  #pollI32 = new Int32Array(this.#pollBuf);
  #pollI16 = new Int16Array(this.#pollBuf);
  #pollPtr = 0n;
  // struct timespec, off-heap (its address is passed to ppoll), written as
  // 32-bit halves so that a sleep allocates no BigInt (x86-64 is little-endian;
  // seconds and nanoseconds here fit in 31 bits).
  #ts = new Int32Array(new ArrayBuffer(16));
  #nfds = 1n; // entries in the pollfd array, set by #rebuild
  #tsPtr = viewAddress(this.#ts);
  #running: Promise<void> | null = null;
  #stop = false;
  #closed = false;
  #pollNs: number;
  #yieldMs: number;
  #untrackedMs: number;
  #ownThreadNs: number;
  #mailbox: Int32Array<SharedArrayBuffer> | null;
  #watchDeno: boolean;
  readonly #denoFdOption: number | undefined;
  /** The probe for Deno's fd waits for watchDenoNow(); false once asked for. */
  #probeDeferred: boolean;
  /** Deno's event-loop fd, polled beside ours (-1: not watched). */
  #denoFd = -1;
  /** First pollfd entry of the handlers (after the notifier and Deno's fd). */
  #base = 1;
  /** Deno's fd was readable: give Deno a turn before sleeping again. */
  #denoWants = false;
  /** Turns given to Deno (for tests and benchmarks). */
  denoTurns = 0;
  /** Turns go through Deno's pool, not a MessageChannel (#checkTurnRate). */
  #turnByPool = false;
  /** The current window of turns (#checkTurnRate). */
  #turnWindowAt = -Infinity;
  #turnsInWindow = 0;
  /** Windows in a row over the limit since turns go through the pool. */
  #stormWindows = 0;
  /** performance.now() of the last dispatch that did something, and of the last yield. */
  #activeAt = -Infinity;
  #yieldedAt = 0;
  /**
   * Times an iteration passes between its methods (F_*): a double passed as
   * an argument or returned from a call V8 does not inline is boxed in a new
   * heap number, and ns deadlines are rarely small integers.
   */
  #f = new Float64Array(5);
  /** Iterations completed (for tests and benchmarks). */
  iterations = 0;
  #stats: LoopStats | null = null;

  /**
   * @param options name
   * @example
   * ```ts
   * import { MainLoop } from "./main_loop.ts";
   * const loop = new MainLoop();
   * const done = loop.run();
   * loop.bh(() => loop.stop()).schedule();
   * await done;
   * loop.close();
   * ```
   */
  constructor(options: MainLoopOptions = {}) {
    this.name = options.name ?? "main";
    this.#pollNs = options.pollNs ?? DEFAULT_POLL_NS;
    if (!(this.#pollNs >= 0)) throw new RangeError(`Invalid pollNs ${options.pollNs}`);
    const yieldNs = options.yieldNs ?? DEFAULT_YIELD_NS;
    if (!(yieldNs > 0)) throw new RangeError(`Invalid yieldNs ${options.yieldNs}`);
    this.#yieldMs = yieldNs / 1e6;
    const untrackedNs = options.untrackedYieldNs ?? yieldNs;
    if (!(untrackedNs > 0)) {
      throw new RangeError(`Invalid untrackedYieldNs ${options.untrackedYieldNs}`);
    }
    this.#untrackedMs = untrackedNs / 1e6;
    this.#ownThreadNs = options.ownThreadNs ?? DEFAULT_OWN_THREAD_NS;
    if (!(this.#ownThreadNs >= 0)) {
      throw new RangeError(`Invalid ownThreadNs ${options.ownThreadNs}`);
    }
    this.#mailbox = options.mailbox ?? null;
    // An iothread (mailbox) keeps its own way: always on its own thread.
    this.#watchDeno = this.#mailbox === null && (options.watchDeno ?? true);
    this.#denoFdOption = options.denoFd;
    this.#probeDeferred = this.#watchDeno && options.deferDenoProbe === true;
    if (this.#watchDeno) watchDenoTimers();
    this.#notifier = new EventNotifier(new Int32Array(new SharedArrayBuffer(BH_WORDS * 4)));
    this.#bhs = new BhTable(this.#notifier.words, this.#notifier.fd);
  }

  /**
   * Sets (or with null, removes) the handlers of fd. A handler may remove or
   * replace itself and others from inside a callback. Loop thread only.
   *
   * @param fd an open fd; the loop does not close it
   * @param handlers read/write callbacks; null or both absent removes
   */
  setFdHandler(fd: number, handlers: FdHandlers | null): void {
    if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`Invalid fd ${fd}`);
    const read = handlers?.read ?? null;
    const write = handlers?.write ?? null;
    const old = this.#fds.get(fd);
    if (old) {
      // A new record, so a dispatch in progress skips the old callbacks.
      old.live = false;
      this.#fds.delete(fd);
    }
    if (read || write) {
      this.#fds.set(fd, { fd, read, write, live: true, sync: handlers?.sync === true });
    }
    this.#dirty = true;
    if (this.#bhs.polling) this.#notifier.notify();
  }

  /**
   * Creates a bottom half. `schedule()` from the loop's thread; for other
   * threads post `bh.handle()` and use `SharedBh`.
   *
   * @param cb runs on the loop's thread
   * @param name for diagnostics
   * @param options `sync`: cb starts no promise reactions
   * @returns the BH
   */
  bh(cb: () => void, name?: string, options?: CallbackOptions): Bh {
    return this.#bhs.create(cb, name, options?.sync === true);
  }

  /**
   * Creates a timer. `mod(ns)` arms it for an absolute time on `clock`
   * (see {@link MainLoop.now}). Loop thread only.
   *
   * @param clock realtime, host/monotonic or virtual
   * @param cb runs on the loop's thread when it expires
   * @param options `sync`: cb starts no promise reactions
   * @returns the timer
   */
  timer(clock: ClockType, cb: () => void, options?: CallbackOptions): Timer {
    return new WakingTimer(this.#timers.create(clock, cb, options?.sync === true), this);
  }

  /**
   * Current time on a clock, in ns.
   *
   * @param clock which clock
   * @returns ns
   */
  now(clock: ClockType): number {
    return clockNs(clockId(clock));
  }

  /**
   * With `deferDenoProbe`, starts looking for Deno's fd now; the loop sleeps
   * beside it from the first iteration after it was found (until then, and
   * when it is not found, it loops as with `watchDeno: false`). Called while
   * the loop is not running, the next {@link run} looks for it as it starts.
   * Does nothing without `deferDenoProbe` or after the first call. Loop
   * thread only.
   */
  watchDenoNow(): void {
    if (!this.#probeDeferred) return;
    this.#probeDeferred = false;
    if (this.#running === null) return;
    this.#findDenoFd().then((found) => {
      if (found < 0 || this.#running === null || this.#stop) return;
      this.#watchFrom(found);
      // Deno just had a turn (this callback); the loop carries on on its
      // own thread from the next iteration, woken to rebuild its set.
      this.#yieldedAt = this.#activeAt = loopNowMs();
      this.#notifier.notify();
    }, () => {});
  }

  /** Deno's fd as the options give it, else found (sys/deno_reactor.ts); -1 when not found. */
  #findDenoFd(): Promise<number> {
    return this.#denoFdOption !== undefined ? Promise.resolve(this.#denoFdOption) : denoReactorFd();
  }

  /** Deno's fd joins the loop's set (the next iteration rebuilds it). */
  #watchFrom(fd: number): void {
    this.#denoFd = fd;
    this.#base = 2;
    this.#dirty = true;
  }

  /** Wakes the loop from ppoll; safe from any thread. */
  notify(): void {
    this.#notifier.notify();
  }

  /** @internal wakes the loop if it sleeps, after a change made on its thread */
  kick(): void {
    if (this.#bhs.polling) this.#notifier.notify();
  }

  /**
   * Starts timing each dispatch (two clock reads per iteration from then
   * on); returns the statistics, which only this loop's thread writes.
   *
   * @returns the loop's statistics
   */
  enableStats(): LoopStats {
    return this.#stats ??= new LoopStats();
  }

  /** Whether run() is in progress. */
  get running(): boolean {
    return this.#running !== null;
  }

  /**
   * Runs the loop until {@link MainLoop.stop}. Callbacks run on the calling
   * thread; an exception from a callback stops the loop and rejects.
   *
   * @returns resolves when the loop has stopped
   */
  run(): Promise<void> {
    if (this.#closed) throw new Error("Main loop is closed");
    if (this.#running) throw new Error("Main loop is already running");
    this.#stop = false;
    this.#running = this.#loop().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  /** Asks run() to return after the current iteration; safe to call from callbacks. */
  stop(): void {
    this.#stop = true;
    this.#notifier.notify();
  }

  /** Closes the eventfd. The loop must not be running. */
  close(): void {
    if (this.#running) throw new Error("Main loop is still running");
    if (this.#closed) return;
    this.#closed = true;
    this.#notifier.close();
  }

  async #loop(): Promise<void> {
    if (this.#watchDeno && this.#denoFd < 0 && !this.#probeDeferred) {
      const fd = await this.#findDenoFd();
      if (fd >= 0) this.#watchFrom(fd);
    }
    this.#yieldedAt = loopNowMs();
    if (this.#denoFd >= 0) {
      // run() returns before the first wait (a turn): the caller's code runs
      // first; and the loop starts on its own thread, as if just active.
      this.#denoWants = true;
      this.#activeAt = this.#yieldedAt;
    }
    while (!this.#stop) {
      if (this.#dirty) this.#rebuild();
      const nfds = this.#nfds;
      const f = this.#f;
      if (this.#bhs.pending) f[F_TIMEOUT] = 0;
      else this.#timers.deadlineNsInto(f, F_TIMEOUT);
      const timeout = f[F_TIMEOUT];
      loopNowMsInto(f, F_NOW);
      const now = f[F_NOW];
      if (this.#denoFd >= 0) {
        if ((now - this.#activeAt) * 1e6 < this.#ownThreadNs) {
          // Synchronous unless Deno's turn is due: no promise per iteration.
          const n = this.#waitBesideDeno(nfds);
          if (n < 0) {
            this.denoTurns++;
            this.#checkTurnRate(now);
            if (this.#turnByPool) {
              // The turn is a zero-timeout ppoll of the loop's own fds on
              // Deno's pool (Deno's fd left out), as the older way yields:
              // what turned ready meanwhile is dispatched at once.
              const ready = await this.#pollAsyncWithoutDeno(nfds, 0);
              if (this.#afterPoll(ready) === RAN_ASYNC) {
                for (let i = 0; i < MICROTASK_HOPS; i++) await SETTLED;
              }
            } else {
              await denoTurn();
              this.#yieldedAt = loopNowMs();
            }
          } else if (this.#afterPoll(n) === RAN_ASYNC) {
            for (let i = 0; i < MICROTASK_HOPS; i++) await SETTLED;
          }
        } else {
          // Idle for long: the whole wait goes to Deno's pool (no turns to
          // pay while nothing happens; the first wake-up costs two hops).
          this.#denoWants = false;
          this.#afterPoll(await this.#pollAsyncWithoutDeno(nfds, timeout));
        }
        continue;
      }
      // Nanoseconds this thread may still keep Deno's event loop waiting.
      const holdNs = (this.#yieldedAt + this.#yieldMs - now) * 1e6;
      // A loop that owns its thread, with no message on its way: always busy.
      const owned = this.#mailbox !== null && Atomics.load(this.#mailbox, 0) === 0;
      let n = 0;
      if (this.#mailbox !== null && !owned) {
        // A message for this thread's Deno side: let Deno run it meanwhile.
        n = await this.#pollAsync(nfds, timeout);
      } else if (holdNs <= 0) {
        // Deno's turn. Still busy: only a hop through the pool (timeout 0),
        // then back to sleeping here; otherwise sleep there until woken.
        const busy = owned || (now - this.#activeAt) * 1e6 < this.#pollNs;
        n = await this.#pollAsync(nfds, busy ? 0 : timeout);
      } else if (timeout === 0) {
        // Work is pending: only collect fd events that are ready now.
        if (this.#records.length > 0) {
          this.#f[F_SLEEP] = 0;
          n = this.#pollSync(nfds);
        }
      } else {
        const busyNs = owned ? Infinity : (this.#activeAt - now) * 1e6 + this.#pollNs;
        if (busyNs > 0) {
          // Something happened lately: sleep right here, not on Deno's pool,
          // until the window or Deno's hold ends (the next iteration then
          // yields or goes idle).
          let wait = Math.min(busyNs, holdNs);
          if (timeout > 0) wait = Math.min(wait, timeout);
          this.#f[F_SLEEP] = wait;
          n = this.#pollSync(nfds);
        } else {
          n = await this.#pollAsync(nfds, timeout);
        }
      }
      if (this.#afterPoll(n) === RAN_ASYNC) {
        // Let promise reactions the callbacks started run before sleeping
        // on this thread again (a microtask checkpoint; Deno's macrotasks
        // still wait for the next yield).
        for (let i = 0; i < MICROTASK_HOPS; i++) await SETTLED;
      }
    }
  }

  /**
   * Stops watching Deno's fd when turns come faster than any work Deno has
   * could ask for: a fd readable whatever Deno does (not Deno's, or never
   * drained by its turns) would otherwise make every iteration a turn and
   * keep this thread busy. The loop first gives its turns as a zero-timeout
   * ppoll on Deno's pool: that ends the storm its MessageChannel turns start
   * once Deno's Node layer runs. Still too many (a fd no turn drains), and it
   * stops watching the fd and yields on its older schedule.
   */
  #checkTurnRate(now: number): void {
    if (now - this.#turnWindowAt >= TURN_WINDOW_MS) {
      // A window that ended within the limit ends a storm, and so does a
      // window with no turn at all between this one and the last.
      if (
        this.#turnsInWindow <= MAX_TURNS_PER_WINDOW ||
        now - this.#turnWindowAt >= 2 * TURN_WINDOW_MS
      ) this.#stormWindows = 0;
      this.#turnWindowAt = now;
      this.#turnsInWindow = 0;
    }
    if (++this.#turnsInWindow === MAX_TURNS_PER_WINDOW + 1) this.#notDrained();
  }

  /** Turns come too fast: turn through Deno's pool, and if that is not enough stop watching Deno's fd. */
  #notDrained(): void {
    if (!this.#turnByPool) {
      // Once Deno's Node layer has started (a module-cache miss loads its
      // transpiler, a VNC WebSocket its crypto), a MessageChannel turn
      // leaves Deno's fd readable again; a pool call's does not.
      this.#turnByPool = true;
      return;
    }
    // A burst of work Deno really has passes; a fd no turn drains storms on.
    if (++this.#stormWindows < STORM_WINDOWS) return;
    console.error(
      `${this.name}: Deno's event-loop fd ${this.#denoFd} stays readable ` +
        `(over ${MAX_TURNS_PER_WINDOW} turns in each ${TURN_WINDOW_MS} ms for ` +
        `${STORM_WINDOWS * TURN_WINDOW_MS} ms); no longer watching it`,
    );
    this.#denoFd = -1;
    this.#base = 1;
    this.#dirty = true;
  }

  /** Dispatches after a poll that found n fds ready; returns what ran (RAN_*). */
  #afterPoll(n: number): number {
    this.iterations++;
    const stats = this.#stats;
    const t0 = stats === null ? 0 : performance.now();
    const ran = this.#dispatch(n);
    const active = ran !== RAN_NOTHING;
    if (stats !== null) stats.record(active, performance.now() - t0);
    if (active) {
      const f = this.#f;
      loopNowMsInto(f, F_SCRATCH);
      this.#activeAt = f[F_SCRATCH];
    }
    return ran;
  }

  /**
   * One wait of the loop with Deno's fd in the set: -1 when Deno's turn is
   * due (it asked, or its hold is over), else ppoll here until our fds,
   * Deno's fd, the timeout or the hold end; returns ready fds.
   */
  #waitBesideDeno(nfds: bigint): number {
    const f = this.#f;
    const timeout = f[F_TIMEOUT];
    this.#turnAt();
    const holdNs = (f[F_TURN_AT] - f[F_NOW]) * 1e6;
    if (this.#denoWants || holdNs <= 0) {
      this.#denoWants = false;
      return -1;
    }
    f[F_SLEEP] = timeout === 0 ? 0 : timeout < 0 ? holdNs : Math.min(timeout, holdNs);
    return this.#pollSync(nfds);
  }

  /**
   * When Deno's next turn is due: its earliest tracked timer (a turn at
   * least TIMER_TURN_GAP_MS after the last, as a timer is not always ripe to
   * the millisecond), else the period for announced waits or for the rest.
   */
  #turnAt(): void {
    const f = this.#f;
    const at = this.#yieldedAt + (denoWaits() > 0 ? this.#yieldMs : this.#untrackedMs);
    nextTimerDueInto(f, F_TURN_AT);
    const timer = f[F_TURN_AT];
    f[F_TURN_AT] = timer < at ? Math.max(timer, this.#yieldedAt + TIMER_TURN_GAP_MS) : at;
  }

  /** ppoll on this thread, up to `#f[F_SLEEP]` ns (0: only what is ready); returns ready fds. */
  #pollSync(nfds: bigint): number {
    const f = this.#f;
    if (f[F_SLEEP] > 0) {
      this.#notifier.arm();
      if (this.#bhs.pending || this.#stop || this.#dirty) f[F_SLEEP] = 0;
    }
    return ppoll(this.#pollPtr, nfds, this.#setTs());
  }

  /**
   * {@link #pollAsync} with Deno's fd left out of the set (Deno watches its
   * own fd meanwhile), for a loop that watches it.
   */
  async #pollAsyncWithoutDeno(nfds: bigint, timeout: number): Promise<number> {
    this.#pollI16[6] = 0;
    const n = await this.#pollAsync(nfds, timeout);
    this.#pollI16[6] = POLLIN;
    return n;
  }

  /** ppoll on Deno's blocking pool: yields to Deno's event loop meanwhile. */
  async #pollAsync(nfds: bigint, timeout: number): Promise<number> {
    this.#bhs.polling = true;
    this.#notifier.arm();
    if (this.#bhs.pending || this.#stop || this.#dirty) timeout = 0;
    this.#f[F_SLEEP] = timeout;
    const tsp = timeout < 0 ? 0n : this.#setTs();
    // Changes made on this thread while ppoll sleeps (from Deno callbacks)
    // notify; records replaced meanwhile are marked dead and skipped.
    const n = await ppollAsync(this.#pollPtr, nfds, tsp);
    this.#bhs.polling = false;
    this.#yieldedAt = loopNowMs();
    return n;
  }

  /** The timespec ppoll gets, of `#f[F_SLEEP]` ns (none: 0). */
  #setTs(): bigint {
    let ns = this.#f[F_SLEEP];
    if (!(ns > 0)) ns = 0;
    const sec = Math.floor(ns / 1e9);
    this.#ts[0] = Math.min(sec, 0x7fffffff);
    this.#ts[2] = Math.floor(ns - sec * 1e9);
    return this.#tsPtr;
  }

  #rebuild(): void {
    this.#dirty = false;
    this.#records = [...this.#fds.values()];
    const base = this.#base;
    this.#nfds = BigInt(this.#records.length + base);
    const need = (this.#records.length + base) * 8;
    if (this.#pollBuf.byteLength < need) {
      this.#pollBuf = new ArrayBuffer(Math.max(need, this.#pollBuf.byteLength * 2));
      this.#pollI32 = new Int32Array(this.#pollBuf);
      this.#pollI16 = new Int16Array(this.#pollBuf);
    }
    this.#pollPtr = viewAddress(this.#pollI32);
    this.#pollI32[0] = this.#notifier.fd;
    this.#pollI16[2] = POLLIN;
    this.#pollI16[3] = 0;
    if (base === 2) {
      this.#pollI32[2] = this.#denoFd;
      this.#pollI16[6] = POLLIN;
      this.#pollI16[7] = 0;
    }
    for (let i = 0; i < this.#records.length; i++) {
      const r = this.#records[i];
      this.#pollI32[2 * (i + base)] = r.fd;
      this.#pollI16[4 * (i + base) + 2] = (r.read ? POLLIN : 0) | (r.write ? POLLOUT : 0);
      this.#pollI16[4 * (i + base) + 3] = 0;
    }
  }

  /** Runs what is due; returns what ran (RAN_*). */
  #dispatch(n: number): number {
    const i16 = this.#pollI16;
    // The wake-up eventfd is drained after the work it announced has run:
    // the BH that woke us runs one read(2) sooner.
    const woken = n > 0 && i16[3] !== 0;
    if (woken) {
      i16[3] = 0;
      n--;
    }
    if (n > 0 && this.#base === 2 && i16[7] !== 0) {
      // Deno's own events: not ours to read; Deno consumes them in its turn.
      i16[7] = 0;
      this.#denoWants = true;
      n--;
    }
    const base = this.#base;
    const bhs = this.#bhs;
    const timers = this.#timers;
    bhs.ranAsync = false;
    timers.ranAsync = false;
    let ranAsync = false;
    const ran = bhs.run() > 0 || n > 0;
    if (n > 0) {
      const records = this.#records;
      for (let i = 0; i < records.length; i++) {
        const rev = i16[4 * (i + base) + 3];
        if (rev === 0) continue;
        i16[4 * (i + base) + 3] = 0;
        const r = records[i];
        if (!r.live) continue;
        if (rev & POLLNVAL) {
          console.error(`${this.name}: fd ${r.fd} is not open; removing its handlers`);
          this.setFdHandler(r.fd, null);
          continue;
        }
        if (!r.sync) ranAsync = true;
        if (r.read && (rev & (POLLIN | POLLHUP | POLLERR))) r.read();
        if (r.live && r.write && (rev & (POLLOUT | POLLERR))) r.write();
      }
    }
    const timed = timers.run() > 0;
    if (woken) this.#notifier.drain();
    if (!timed && !ran) return RAN_NOTHING;
    return ranAsync || bhs.ranAsync || timers.ranAsync ? RAN_ASYNC : RAN_SYNC;
  }
}

/** Wraps a timer so that arming it while the loop sleeps wakes the loop. */
class WakingTimer implements Timer {
  #t: Timer;
  #loop: MainLoop;

  constructor(t: Timer, loop: MainLoop) {
    this.#t = t;
    this.#loop = loop;
  }

  get pending(): boolean {
    return this.#t.pending;
  }

  mod(expireNs: number): void {
    this.#t.mod(expireNs);
    this.#loop.kick();
  }

  del(): void {
    this.#t.del();
  }
}
