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
/** Where {@link clockNs} reads its answer from. */
const scratch = new Float64Array(1);

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
  clockNsInto(id, scratch, 0);
  return scratch[0];
}

/** performance.now() minus the monotonic clock in ms: both count CLOCK_MONOTONIC. */
const PERFORMANCE_OFFSET_MS = performance.now() - clockNs(CLOCK_MONOTONIC) / 1e6;

/**
 * {@link clockNs}, written into `out[at]`: for the loops, which read clocks
 * every iteration, and where a double returned from a call V8 does not
 * inline is a new heap number each time.
 *
 * @param id CLOCK_REALTIME or CLOCK_MONOTONIC
 * @param out where the ns go
 * @param at the index in `out`
 * @example
 * ```ts
 * import { CLOCK_MONOTONIC, clockNsInto } from "./clock.ts";
 * const t = new Float64Array(1);
 * clockNsInto(CLOCK_MONOTONIC, t, 0);
 * console.log(t[0] > 0);
 * ```
 */
export function clockNsInto(id: number, out: Float64Array, at: number): void {
  libc.clock_gettime(id, tsBytes);
  // tv_sec: low word unsigned, high word signed; tv_nsec < 1e9 fits the low word.
  out[at] = ((tsWords[0] >>> 0) + tsWords[1] * 4294967296) * 1e9 + tsWords[2];
}

/**
 * `performance.now()` read through clock_gettime, written into `out[at]`:
 * the same milliseconds (Deno's clock is CLOCK_MONOTONIC since its time
 * origin) without the heap number `performance.now()` makes on each call,
 * for the loops' own bookkeeping.
 *
 * @param out where the ms go
 * @param at the index in `out`
 * @example
 * ```ts
 * import { loopNowMsInto } from "./clock.ts";
 * const t = new Float64Array(1);
 * loopNowMsInto(t, 0);
 * console.log(Math.abs(t[0] - performance.now()) < 1);
 * ```
 */
export function loopNowMsInto(out: Float64Array, at: number): void {
  clockNsInto(CLOCK_MONOTONIC, out, at);
  out[at] = out[at] / 1e6 + PERFORMANCE_OFFSET_MS;
}

/**
 * {@link loopNowMsInto}, returned (for code that reads it rarely).
 *
 * @returns milliseconds since this process's time origin
 * @example
 * ```ts
 * import { loopNowMs } from "./clock.ts";
 * console.log(Math.abs(loopNowMs() - performance.now()) < 1);
 * ```
 */
export function loopNowMs(): number {
  return clockNs(CLOCK_MONOTONIC) / 1e6 + PERFORMANCE_OFFSET_MS;
}
