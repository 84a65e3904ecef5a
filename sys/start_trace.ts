/**
 * The start-up and shutdown timeline (`DENOVMM_TRACE_START=1`, readable with
 * `--allow-env=DENOVMM_TRACE_START`): named phases stamped on one clock (ms
 * since this process's `performance.timeOrigin`), from any thread, printed on
 * stderr as one table when the VMM exits. bench/boot_bench.ts reads it.
 *
 * Phases from other threads are stamped there as epoch ms
 * (`performance.timeOrigin + performance.now()`, a clock all isolates share)
 * and handed to {@link traceMark} on the main thread.
 *
 * Costs nothing when off: {@link traceMark} returns after one boolean test.
 *
 * @module
 */

const NAME = "DENOVMM_TRACE_START";
let enabled: boolean | undefined;
const marks: { phase: string; ms: number }[] = [];

/**
 * Whether the trace is on. Asks the permission state first, so it needs no
 * --allow-env and never prompts.
 *
 * @returns true when DENOVMM_TRACE_START=1 is set and readable
 * @example
 * ```ts
 * import { traceEnabled } from "./start_trace.ts";
 * if (traceEnabled()) console.error("tracing");
 * ```
 */
export function traceEnabled(): boolean {
  if (enabled === undefined) {
    enabled = Deno.permissions.querySync({ name: "env", variable: NAME }).state === "granted" &&
      Deno.env.get(NAME) === "1";
  }
  return enabled;
}

/**
 * The current time on the clock every thread shares (epoch ms, µs resolution).
 *
 * @returns epoch ms
 * @example
 * ```ts
 * import { epochMs } from "./start_trace.ts";
 * const t = epochMs();
 * ```
 */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Records that a phase was reached. Main thread only; other threads pass
 * their own stamp.
 *
 * @param phase what happened (`KVM set-up done`, `vcpu-0 isolate created`)
 * @param atEpochMs when, as {@link epochMs}; now if absent
 * @example
 * ```ts
 * import { traceMark } from "./start_trace.ts";
 * traceMark("modules loaded");
 * ```
 */
export function traceMark(phase: string, atEpochMs?: number): void {
  if (!traceEnabled()) return;
  const ms = atEpochMs === undefined ? performance.now() : atEpochMs - performance.timeOrigin;
  marks.push({ phase, ms });
}

/**
 * The timeline so far, in time order: one line per phase with its time since
 * process start and since the previous phase.
 *
 * @returns the lines (empty when tracing is off)
 * @example
 * ```ts
 * import { traceLines } from "./start_trace.ts";
 * for (const l of traceLines()) console.error(l);
 * ```
 */
export function traceLines(): string[] {
  if (!traceEnabled()) return [];
  const sorted = [...marks].sort((a, b) => a.ms - b.ms);
  // Phases before the time origin (the process's exec) have negative times.
  let prev = Math.min(0, sorted[0]?.ms ?? 0);
  return sorted.map((m) => {
    const line = `denovmm: trace ${m.ms.toFixed(1).padStart(8)} ms (+${
      (m.ms - prev).toFixed(1).padStart(6)
    }) ${m.phase}`;
    prev = m.ms;
    return line;
  });
}

/** Prints {@link traceLines} on stderr (once; later calls print new phases only). */
export function tracePrint(): void {
  for (const l of traceLines()) console.error(l);
  marks.length = 0;
}
