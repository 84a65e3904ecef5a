/**
 * When this process was started (its exec), on the epoch clock the start-up
 * trace uses (sys/start_trace.ts). Deno sets `performance.timeOrigin` only
 * once its runtime is up: ~55 ms after the exec natively on the 2-vCPU
 * cloud VM this was measured on (the binary mapped in, V8 and the runtime's
 * snapshot set up), a second or more under the nested host's emulator. That
 * part is the runtime's own start; without this the trace would not show it.
 *
 * From `/proc/self/stat`'s start time (clock ticks since boot, so 10 ms
 * resolution) and CLOCK_BOOTTIME, the clock it counts on; read through libc
 * (`--allow-ffi` is enough).
 *
 * @module
 */
import { libc } from "./libc.ts";
import { readProcText } from "./procfs.ts";

/** CLOCK_BOOTTIME (linux/time.h): the clock /proc's start times count on. */
const CLOCK_BOOTTIME = 7;
/** USER_HZ: /proc reports times in these ticks on every Linux architecture's ABI. */
const TICKS_PER_SECOND = 100;

/**
 * The start time field of a `/proc/PID/stat` line, in clock ticks since boot.
 *
 * @param stat the line
 * @returns the ticks
 * @example
 * ```ts
 * import { startTicksOf } from "./process_start.ts";
 * const line = "7 (a b) S" + " 0".repeat(18) + " 4242 0";
 * console.log(startTicksOf(line)); // 4242
 * ```
 */
export function startTicksOf(stat: string): number {
  // The command name may hold spaces and parentheses: fields count from the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Field 22 of the line; field 3 (state) is rest[0].
  const ticks = Number(rest[22 - 3]);
  if (!Number.isSafeInteger(ticks) || ticks < 0) {
    throw new Error(`No start time in /proc/self/stat: ${stat.slice(0, 80)}`);
  }
  return ticks;
}

/**
 * This process's start, as epoch ms (`performance.timeOrigin + performance.now()`).
 *
 * @returns epoch ms, to 10 ms
 * @example
 * ```ts
 * import { processStartEpochMs } from "./process_start.ts";
 * console.log(performance.timeOrigin - processStartEpochMs() >= -10); // true
 * ```
 */
export function processStartEpochMs(): number {
  const ticks = startTicksOf(readProcText("/proc/self/stat"));
  const ts = new BigInt64Array(2);
  if (libc.clock_gettime(CLOCK_BOOTTIME, new Uint8Array(ts.buffer)) !== 0) {
    throw new Error("clock_gettime(CLOCK_BOOTTIME) failed");
  }
  const nowEpoch = performance.timeOrigin + performance.now();
  const bootMs = Number(ts[0]) * 1000 + Number(ts[1]) / 1e6;
  return nowEpoch - (bootMs - ticks * (1000 / TICKS_PER_SECOND));
}
