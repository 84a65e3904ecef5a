/**
 * The tables `net_bench.ts` prints: per measure, each VMM's figure over all
 * rounds, the ratio against QEMU of the same round for every round, their
 * median against the target, and the CPU each VMM's threads spent per ping
 * and per MiB moved. Pure functions over the runs' results, so the
 * arithmetic is tested without a guest.
 *
 * @module
 */

/** What one VMM boot measured. */
export interface RunResult {
  /** Every ping reply's round trip, ms. */
  rtts: number[];
  /** Seconds the guest took to receive the payload (host->guest). */
  rx: number;
  /** Seconds the host took to receive it back (guest->host). */
  tx: number;
  /** CPU seconds by thread role during the ping phase. */
  pingCpu: Map<string, number>;
  /** CPU seconds by thread role during both TCP transfers. */
  tcpCpu: Map<string, number>;
}

/** A configuration compared against QEMU: its key, QEMU's key, the target ratio. */
export interface Path {
  key: string;
  qemu: string;
  target: number;
}

/** What the tables need besides the results. */
export interface SummaryOptions {
  /** Pings per run. */
  pings: number;
  /** MiB each way per run. */
  mib: number;
  /** The key prefix of a base tree's runs ("" when none): adds after/before rows. */
  base: string;
}

/** Median; NaN for none. */
export function median(xs: number[]): number {
  return quantile(xs, 0.5);
}

/** p90 by linear interpolation between the closest ranks; NaN for none. */
export function p90(xs: number[]): number {
  return quantile(xs, 0.9);
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return lo + 1 < s.length ? s[lo] + (s[lo + 1] - s[lo]) * (i - lo) : s[lo];
}

/** One measure: its name, its figure for one run, and whether lower is better. */
interface Measure {
  name: string;
  of(r: RunResult, mib: number): number;
  lowerIsBetter: boolean;
  /** Figure over all rounds (pooled pings, or the median of rounds). */
  pooled(rs: RunResult[], mib: number): number;
}

const MEASURES: Measure[] = [
  {
    name: "ping RTT median, ms",
    of: (r) => median(r.rtts),
    lowerIsBetter: true,
    pooled: (rs) => median(rs.flatMap((r) => r.rtts)),
  },
  {
    name: "ping RTT p90, ms",
    of: (r) => p90(r.rtts),
    lowerIsBetter: true,
    pooled: (rs) => p90(rs.flatMap((r) => r.rtts)),
  },
  {
    name: "TCP host->guest, MB/s",
    of: (r, mib) => mib / r.rx,
    lowerIsBetter: false,
    pooled: (rs, mib) => median(rs.map((r) => mib / r.rx)),
  },
  {
    name: "TCP guest->host, MB/s",
    of: (r, mib) => mib / r.tx,
    lowerIsBetter: false,
    pooled: (rs, mib) => median(rs.map((r) => mib / r.tx)),
  },
];

/**
 * Ratios of `ours` against `theirs` round by round (> 1: ours is better),
 * skipping rounds where either gave no result.
 */
export function roundRatios(
  ours: (RunResult | null)[],
  theirs: (RunResult | null)[],
  of: (r: RunResult) => number,
  lowerIsBetter: boolean,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(ours.length, theirs.length); i++) {
    const a = ours[i], b = theirs[i];
    if (!a || !b) continue;
    out.push(lowerIsBetter ? of(b) / of(a) : of(a) / of(b));
  }
  return out;
}

const fix = (x: number, d = 2) => Number.isFinite(x) ? x.toFixed(d) : "-";

/** The result tables as Markdown. */
export function summarize(
  results: Map<string, (RunResult | null)[]>,
  paths: Path[],
  opts: SummaryOptions,
): string {
  const lines: string[] = [];
  const ok = (k: string) => (results.get(k) ?? []).filter((r): r is RunResult => r !== null);
  lines.push(
    "| configuration | measure | QEMU | denovmm | ratio vs QEMU, median of rounds (>1 better) | per round | target | met |",
    "|---|---|---|---|---|---|---|---|",
  );
  for (const p of paths) {
    for (const m of MEASURES) {
      const rs = roundRatios(
        results.get(p.key) ?? [],
        results.get(p.qemu) ?? [],
        (r) => m.of(r, opts.mib),
        m.lowerIsBetter,
      );
      const med = median(rs);
      lines.push(
        `| ${p.key} | ${m.name} | ${fix(m.pooled(ok(p.qemu), opts.mib), 3)} | ${
          fix(m.pooled(ok(p.key), opts.mib), 3)
        } | ${fix(med)}x | ${rs.map((x) => fix(x)).join(", ")} | ≥ ${p.target}x | ${
          rs.length === 0 ? "no result" : med >= p.target ? "yes" : "no"
        } |`,
      );
    }
  }
  const base = paths.find((p) => opts.base && p.key.startsWith(opts.base));
  const after = base && paths.find((p) => p.qemu === base.qemu && p !== base);
  if (base && after) {
    lines.push(
      "",
      `| ${after.key} vs ${base.key} | ratio, median of rounds (>1: faster than base) | per round |`,
      "|---|---|---|",
    );
    for (const m of MEASURES) {
      const rs = roundRatios(
        results.get(after.key) ?? [],
        results.get(base.key) ?? [],
        (r) => m.of(r, opts.mib),
        m.lowerIsBetter,
      );
      lines.push(`| ${m.name} | ${fix(median(rs))}x | ${rs.map((x) => fix(x)).join(", ")} |`);
    }
  }
  lines.push(
    "",
    "| VMM | CPU ms per ping by thread, median of rounds | all | CPU ms per MiB moved (TCP) | all |",
    "|---|---|---|---|---|",
  );
  for (const [key] of results) {
    const rs = ok(key);
    if (rs.length === 0) continue;
    const ping = perRole(rs.map((r) => r.pingCpu), 1000 / opts.pings);
    const tcp = perRole(rs.map((r) => r.tcpCpu), 1000 / (2 * opts.mib));
    lines.push(`| ${key} | ${ping.roles} | ${fix(ping.all)} | ${tcp.roles} | ${fix(tcp.all)} |`);
  }
  return lines.join("\n");
}

/** Median over runs of each role's CPU, scaled; the roles that spent any, largest first. */
export function perRole(
  runs: Map<string, number>[],
  scale: number,
): { roles: string; all: number } {
  const roles = new Set(runs.flatMap((m) => [...m.keys()]));
  const rows = [...roles].map((k) => [k, median(runs.map((m) => (m.get(k) ?? 0) * scale))] as const)
    .filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
  return {
    roles: rows.map(([k, v]) => `${k} ${fix(v, 1)}`).join(", "),
    all: median(runs.map((m) => [...m.values()].reduce((s, v) => s + v, 0) * scale)),
  };
}
