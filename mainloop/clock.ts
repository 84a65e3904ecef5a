/**
 * Clocks the loops' timers run on, read with clock_gettime(2).
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import type { ClockType } from "./types.ts";

/** clock_gettime clock ids (linux/time.h). */
export const CLOCK_REALTIME = 0;
/** Monotonic clock: never jumps, stops in suspend. */
export const CLOCK_MONOTONIC = 1;

// struct timespec as 32-bit words (x86-64, little-endian): read without a
// BigInt, so a clock read allocates nothing (the loops read one per timer
// list per iteration).
const tsWords = new Int32Array(4);
const tsBytes = new Uint8Array(tsWords.buffer);

/**
 * The clock id behind a {@link ClockType}. `host` and `monotonic` are the
 * monotonic clock (QEMU_CLOCK_HOST follows the wall clock in QEMU, but a VMM
 * without migration has no use for the difference); `virtual` also reads the
 * monotonic clock until vCPU time accounting exists.
 *
 * @param clock the clock name
 * @returns the clock_gettime id
 * @example
 * ```ts
 * import { clockId } from "./clock.ts";
 * console.log(clockId("realtime")); // 0
 * ```
 */
export function clockId(clock: ClockType): number {
  switch (clock) {
    case "realtime":
      return CLOCK_REALTIME;
    case "host":
    case "monotonic":
    case "virtual":
      return CLOCK_MONOTONIC;
    default:
      throw new TypeError(`Unknown clock ${clock}`);
  }
}

/**
 * Nanoseconds on a clock. Realtime values (~1.8e18) exceed 2^53, so they are
 * exact only to 256 ns; monotonic values are exact for ~104 days of uptime.
 *
 * @param id CLOCK_REALTIME or CLOCK_MONOTONIC
 * @returns the time in ns
 * @example
 * ```ts
 * import { clockNs, CLOCK_MONOTONIC } from "./clock.ts";
 * const t = clockNs(CLOCK_MONOTONIC);
 * ```
 */
export function clockNs(id: number): number {
  libc.clock_gettime(id, tsBytes);
  // tv_sec: low word unsigned, high word signed; tv_nsec < 1e9 fits the low word.
  return ((tsWords[0] >>> 0) + tsWords[1] * 4294967296) * 1e9 + tsWords[2];
}
