/**
 * Statistics for people and programs: the compact stderr line of
 * `--stats-interval`, QMP `x-query-denovmm-stats` (everything, rates since
 * the previous query) and QMP `query-stats` (QEMU's StatsResult shape).
 *
 * @module
 */
import type { EventLoop } from "../mainloop/types.ts";
import {
  type DenovmmStats,
  type RawSample,
  type StatsSources,
  summarize,
  takeSample,
} from "./sample.ts";

/**
 * Keeps the previous sample so each call reports rates since the last one.
 *
 * @example
 * ```ts
 * import { StatsReporter } from "./report.ts";
 * const r = new StatsReporter({ control: () => undefined, vcpuTids: () => [] });
 * console.log(r.next()["interval-s"] >= 0);
 * ```
 */
export class StatsReporter {
  readonly #src: StatsSources;
  #prev: RawSample | undefined;

  /** @param src where the counters live */
  constructor(src: StatsSources) {
    this.#src = src;
    this.#prev = takeSample(src);
  }

  /** @returns statistics since the previous call (or since creation) */
  next(): DenovmmStats {
    const cur = takeSample(this.#src);
    const out = summarize(cur, this.#prev);
    this.#prev = cur;
    return out;
  }
}

function short(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)}k`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return `${Math.round(n)}`;
}

/**
 * One line for stderr: per vCPU exits/s (the busiest reasons) and guest vs
 * VMM time; the main loop's wake-ups and p99 dispatch; the aio pools.
 *
 * @param s statistics
 * @returns the line (no newline)
 * @example
 * ```ts ignore
 * console.error(formatStatsLine(reporter.next()));
 * ```
 */
export function formatStatsLine(s: DenovmmStats): string {
  const parts: string[] = [];
  for (const v of s.vcpus) {
    const reasons = Object.entries(v["exits-per-s-by-reason"])
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([k, n]) => `${k} ${short(n)}`);
    parts.push(
      `vcpu${v["cpu-index"]} ${short(v["exits-per-s"])} exits/s` +
        (reasons.length ? ` (${reasons.join(", ")})` : "") +
        ` guest ${Math.round(v["guest-pct"])}% vmm ${Math.round(v["vmm-pct"])}%`,
    );
  }
  const l = s["main-loop"];
  if (l) {
    parts.push(
      `loop ${short(l["wakeups-per-s"])} wakeups/s p99 ${l["p99-dispatch-us"]}us max ${
        Math.round(l["max-dispatch-us"])
      }us`,
    );
  }
  for (const [i, a] of s.aio.entries()) {
    parts.push(
      `aio${i} ${a.busy}/${a.threads} busy q${a["queue-depth"]} ${
        short(a["completions-per-s"])
      } done/s`,
    );
  }
  const vmm = s.threads.reduce((t, x) => t + x["cpu-pct"], 0);
  parts.push(`cpu ${Math.round(vmm)}%`);
  return `denovmm: stats: ${parts.join(" | ")}`;
}

/**
 * QMP query-stats entries (QEMU's StatsResult: provider, qom-path for vCPUs,
 * a list of name/value pairs). Provider `denovmm`: the counters are the
 * VMM's own, not KVM's binary statistics.
 *
 * @param s statistics
 * @param target "vm" or "vcpu"
 * @returns the entries
 * @example
 * ```ts ignore
 * queryStatsEntries(reporter.next(), "vcpu");
 * ```
 */
export function queryStatsEntries(s: DenovmmStats, target: "vm" | "vcpu"): unknown[] {
  if (target === "vcpu") {
    return s.vcpus.map((v) => ({
      provider: "denovmm",
      "qom-path": `/machine/unattached/device[${v["cpu-index"]}]`,
      stats: [
        { name: "exits", value: v.exits },
        ...Object.entries(v["exits-per-s-by-reason"]).map(([k, n]) => ({
          name: `${k}-exits-per-s`,
          value: n,
        })),
        { name: "guest-pct", value: v["guest-pct"] },
        { name: "vmm-pct", value: v["vmm-pct"] },
      ],
    }));
  }
  const stats: { name: string; value: number }[] = [];
  const l = s["main-loop"];
  if (l) {
    stats.push(
      { name: "main-loop-iterations", value: l.iterations },
      { name: "main-loop-wakeups-per-s", value: l["wakeups-per-s"] },
      { name: "main-loop-p99-dispatch-us", value: l["p99-dispatch-us"] },
    );
  }
  for (const [i, a] of s.aio.entries()) {
    stats.push(
      { name: `aio${i}-queue-depth`, value: a["queue-depth"] },
      { name: `aio${i}-busy-threads`, value: a.busy },
      { name: `aio${i}-completions`, value: a.completions },
    );
  }
  return [{ provider: "denovmm", stats }];
}

/**
 * Prints {@link formatStatsLine} to stderr every `seconds` on a loop.
 *
 * @param loop the main loop
 * @param src the counters
 * @param seconds the period
 * @returns a function that stops printing
 * @example
 * ```ts ignore
 * const stop = startStatsPrinter(vm.loop, sources, 5);
 * ```
 */
export function startStatsPrinter(
  loop: EventLoop,
  src: StatsSources,
  seconds: number,
): () => void {
  const reporter = new StatsReporter(src);
  const periodNs = seconds * 1e9;
  let stopped = false;
  const timer = loop.timer("monotonic", () => {
    if (stopped) return;
    console.error(formatStatsLine(reporter.next()));
    timer.mod(loop.now("monotonic") + periodNs);
  });
  timer.mod(loop.now("monotonic") + periodNs);
  return () => {
    stopped = true;
    timer.del();
  };
}
