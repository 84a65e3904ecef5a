/**
 * What a main loop did: iterations, wake-ups with work, and how long its
 * dispatches (all callbacks of one iteration: BHs, fd handlers, timers)
 * took, as a power-of-two histogram in microseconds so a percentile costs
 * no allocation and no sorting. Only the loop's own thread writes it.
 *
 * @module
 */

const BUCKETS = 32;

/**
 * Dispatch statistics of one loop.
 *
 * @example
 * ```ts
 * import { LoopStats } from "./loop_stats.ts";
 * const s = new LoopStats();
 * s.record(true, 0.004);
 * s.record(true, 2.5);
 * console.log(s.wakeups, s.percentileUs(0.99)); // 2 4096
 * ```
 */
export class LoopStats {
  /** Iterations that dispatched something (fds ready or BHs pending). */
  wakeups = 0;
  /** Iterations recorded. */
  iterations = 0;
  /** Longest dispatch seen, in microseconds. */
  maxUs = 0;
  /** Dispatches per bucket: bucket b holds durations in [2^(b-1), 2^b) µs (b = 0: < 1 µs). */
  readonly histogram = new Float64Array(BUCKETS);

  /**
   * Records one iteration.
   *
   * @param woke whether it had work
   * @param ms how long its dispatch took, in milliseconds
   */
  record(woke: boolean, ms: number): void {
    this.iterations++;
    if (woke) this.wakeups++;
    const us = ms * 1000;
    if (us > this.maxUs) this.maxUs = us;
    const b = us < 1 ? 0 : Math.min(BUCKETS - 1, 32 - Math.clz32(Math.floor(us)));
    this.histogram[b]++;
  }

  /**
   * An upper bound of a percentile of dispatch time.
   *
   * @param p fraction, e.g. 0.99
   * @returns microseconds (the top of the bucket holding it; 0 when empty)
   */
  percentileUs(p: number): number {
    let total = 0;
    for (let b = 0; b < BUCKETS; b++) total += this.histogram[b];
    if (total === 0) return 0;
    const want = Math.ceil(total * p);
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.histogram[b];
      if (seen >= want) return b === 0 ? 1 : 2 ** b;
    }
    return this.maxUs;
  }

  /** Starts a new measuring interval (keeps nothing). */
  reset(): void {
    this.wakeups = 0;
    this.iterations = 0;
    this.maxUs = 0;
    this.histogram.fill(0);
  }
}
