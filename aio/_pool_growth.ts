/**
 * When the aio thread pool starts another thread. QEMU's pool starts one
 * whenever a request finds no idle thread: a pthread costs microseconds. A
 * pool thread here is a Worker, an isolate of its own: tens of ms of CPU
 * (most of a second in the nested host) and ~9 MiB. Started in the middle
 * of a burst, it competes for the CPU the burst needs and is often ready
 * only after the burst is over (measured in bench/disk_guest_bench.ts: a
 * guest `dd` paid a thread start in every phase). So:
 *
 * - the first `warm` threads start at the pool's first request, one after
 *   another, and stay however idle (a disk's pool keeps two: the guest's
 *   readahead keeps one or two requests in flight);
 * - beyond them, a thread starts only when requests have waited with no
 *   idle thread for as long as starting one takes (the pool measures it):
 *   a backlog the running threads drain sooner never pays for a start, and
 *   a lasting one costs at most twice what starting at once would (the
 *   rent-or-buy rule).
 *
 * @module
 */
import type { EventLoop, Timer } from "../mainloop/types.ts";

/** What a thread start is taken to cost before one was measured: 50 ms. */
export const DEFAULT_START_NS = 50_000_000;
/** Bounds of the measured start cost used as the wait. */
const MIN_START_NS = 1_000_000, MAX_START_NS = 2_000_000_000;

/**
 * The growth rule of one pool. Used on the pool's loop thread.
 *
 * @example
 * ```ts ignore
 * const growth = new PoolGrowth(loop, { warm: 2, grow: () => pool.maybeGrow() });
 * if (growth.wants(threads, avail > idle)) spawn();
 * ```
 */
export class PoolGrowth {
  readonly #loop: EventLoop;
  readonly #warm: number;
  readonly #grow: () => void;
  #timer: Timer | null = null;
  /** When the current backlog was first seen (ns, monotonic), or -1. */
  #since = -1;
  #startNs = DEFAULT_START_NS;

  /**
   * @param loop the pool's loop (its monotonic clock and a timer)
   * @param options `warm` threads started at once and kept; `grow` re-checks
   *   the need when a waiting backlog has lasted a thread start
   */
  constructor(loop: EventLoop, options: { warm: number; grow: () => void }) {
    if (!Number.isInteger(options.warm) || options.warm < 0) {
      throw new RangeError(`Invalid warmThreads ${options.warm}`);
    }
    this.#loop = loop;
    this.#warm = options.warm;
    this.#grow = options.grow;
  }

  /** Threads kept however idle once started. */
  get warm(): number {
    return this.#warm;
  }

  /** The start cost the rule waits for (ns): the last measured, or the default. */
  get startNs(): number {
    return this.#startNs;
  }

  /**
   * Whether to start a thread now.
   *
   * @param threads live and starting threads
   * @param backlog whether requests wait that no idle thread will take
   * @returns true to start one
   */
  wants(threads: number, backlog: boolean): boolean {
    if (threads < Math.max(1, this.#warm)) return true;
    if (!backlog) {
      this.#since = -1;
      return false;
    }
    const now = this.#loop.now("monotonic");
    if (this.#since < 0) this.#since = now;
    if (now - this.#since >= this.#startNs) {
      this.#since = -1;
      return true;
    }
    this.#arm(this.#since + this.#startNs);
    return false;
  }

  /** The queue was seen empty: a later backlog is a new one. */
  drained(): void {
    this.#since = -1;
  }

  /**
   * Records how long a thread took from `new Worker` to ready.
   *
   * @param ns the duration
   */
  started(ns: number): void {
    this.#startNs = Math.min(MAX_START_NS, Math.max(MIN_START_NS, ns));
  }

  /** Drops the timer (the pool is closing). */
  close(): void {
    this.#timer?.del();
  }

  #arm(at: number): void {
    this.#timer ??= this.#loop.timer("monotonic", this.#grow);
    if (!this.#timer.pending) this.#timer.mod(at);
  }
}
