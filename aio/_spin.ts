/**
 * A pool thread's short spin for the next request before it sleeps, so that
 * a request submitted soon after the last one completes is taken without a
 * futex wake-up (10-20 µs on a 2-core cloud VM, one of the two thread
 * hand-offs a request makes). The window adapts the way QEMU's
 * `aio_poll` adapts `poll_ns` (util/aio-posix.c `adjust_polling_time`): it
 * grows (from 4 µs, doubling up to the maximum) when a sleep ended with work
 * within the maximum, and drops to 0 when a sleep lasted longer, so a pool
 * fed slowly (or idle) never spins. Only one thread of a pool spins at a
 * time, and a submitter that finds it spinning claims it instead of waking
 * a sleeper.
 *
 * @module
 */
import { CLOCK_MONOTONIC, clockNs } from "../mainloop/clock.ts";
import { H_AVAIL, H_SPIN, H_SPIN_HITS, H_STOP } from "./_layout.ts";

/** Default longest spin: 50 µs (a request's round trip through the loop at queue depth 1). */
export const DEFAULT_SPIN_NS = 50_000;
/** The first window after a short sleep. */
const GROW_FROM_NS = 4_000;

/**
 * The next spin window after a sleep.
 *
 * @param windowNs the window before the sleep
 * @param sleptNs how long the sleep lasted until work came (Infinity: it timed out)
 * @param maxNs the longest window (0: never spin)
 * @returns the new window
 * @example
 * ```ts
 * import { nextSpinWindow } from "./_spin.ts";
 * nextSpinWindow(0, 20_000, 50_000); // 4000: work came soon, start spinning
 * nextSpinWindow(32_000, 1e6, 50_000); // 0: work came late, stop
 * ```
 */
export function nextSpinWindow(windowNs: number, sleptNs: number, maxNs: number): number {
  if (maxNs <= 0 || !(sleptNs <= maxNs)) return 0;
  return windowNs === 0 ? Math.min(GROW_FROM_NS, maxNs) : Math.min(windowNs * 2, maxNs);
}

const pause = (Atomics as unknown as { pause?: () => void }).pause?.bind(Atomics) ??
  (() => {});

/**
 * Spins up to `windowNs` for work, if no other thread of the pool spins.
 * Call with the thread counted idle.
 *
 * @param h the pool's header words
 * @param windowNs the window
 * @returns true if work may be there (take it), false to sleep
 * @example
 * ```ts ignore
 * if (!spinForWork(h, window)) Atomics.wait(h, H_AVAIL, 0, idleMs);
 * ```
 */
export function spinForWork(h: Int32Array, windowNs: number): boolean {
  if (windowNs <= 0 || Atomics.compareExchange(h, H_SPIN, 0, 1) !== 0) return false;
  const end = clockNs(CLOCK_MONOTONIC) + windowNs;
  let n = 0;
  while (Atomics.load(h, H_AVAIL) === 0 && Atomics.load(h, H_SPIN) === 1) {
    if (Atomics.load(h, H_STOP)) break;
    pause();
    // The clock is an FFI call: look at it every 16 rounds.
    if ((++n & 15) === 0 && clockNs(CLOCK_MONOTONIC) >= end) break;
  }
  // A submitter that claimed us (2) counted on us to take its request.
  const claimed = Atomics.exchange(h, H_SPIN, 0) === 2;
  const work = claimed || Atomics.load(h, H_AVAIL) > 0;
  if (work) Atomics.add(h, H_SPIN_HITS, 1);
  return work;
}

/**
 * Wakes a thread for a request just queued: claims the spinning thread if
 * there is one, else wakes one sleeper.
 *
 * @param h the pool's header words
 * @example
 * ```ts ignore
 * Atomics.add(h, H_AVAIL, 1);
 * wakeForWork(h);
 * ```
 */
export function wakeForWork(h: Int32Array): void {
  if (Atomics.compareExchange(h, H_SPIN, 1, 2) !== 1) Atomics.notify(h, H_AVAIL, 1);
}
