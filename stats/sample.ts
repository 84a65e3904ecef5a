/**
 * Live statistics: a raw sample of every counter the VMM keeps, and the
 * rates between two samples.
 *
 * Sources: per vCPU, the exit counters its thread writes into the VM control
 * block (vcpu/worker.ts, one increment per exit, no allocation); per
 * thread, CPU time from /proc/self/task (for vCPU threads also the kernel's
 * `guest_time`, so time in the guest vs. in the VMM costs nothing on the
 * exit path); the main loop's dispatch histogram; the aio pools' depth,
 * busy threads and completions.
 *
 * @module
 */
import { VCPU_EXIT_KINDS, VCPU_EXITS, type VmControl } from "../vcpu/vm_control.ts";
import type { LoopStats } from "../mainloop/loop_stats.ts";
import { aioPools } from "../aio/pool_stats.ts";
import { processThreads } from "../sys/procfs.ts";

/** Where statistics come from (re-read at each sample: a reset rebuilds the machine). */
export interface StatsSources {
  /** The running machine's control block, if there is one. */
  control(): VmControl | undefined;
  /** Host thread ids of the vCPU threads, by index. */
  vcpuTids(): number[];
  /** The main loop's statistics (MainLoop.enableStats()). */
  loop?: LoopStats;
}

/** ExitKind values (hypervisor/types.ts) and the names statistics give them. */
export const EXIT_KIND_NAMES: Readonly<Record<number, string>> = {
  1: "io",
  2: "mmio",
  3: "hlt",
  4: "intr",
  5: "shutdown",
  6: "fail-entry",
  7: "internal-error",
  8: "system-event",
  9: "other",
};

/** CPU times of one thread, seconds. */
interface ThreadTimes {
  name: string;
  user: number;
  system: number;
  guest: number;
}

/** Every counter at one moment. */
export interface RawSample {
  /** performance.now() when taken, ms. */
  atMs: number;
  /** Per vCPU: total exits and exits by ExitKind (index = kind). */
  vcpus: { index: number; tid: number; exits: number; byKind: number[] }[];
  /** Per thread id. */
  threads: Map<number, ThreadTimes>;
  /** Main loop counters and a histogram copy. */
  loop?: { iterations: number; wakeups: number; histogram: Float64Array; maxUs: number };
  /** Per aio pool. */
  aio: { threads: number; idle: number; inFlight: number; completed: number }[];
}

function threadTimes(): Map<number, ThreadTimes> {
  const out = new Map<number, ThreadTimes>();
  for (const t of processThreads()) {
    out.set(t.tid, {
      name: t.name,
      user: t.userSeconds,
      system: t.systemSeconds,
      guest: t.guestSeconds,
    });
  }
  return out;
}

/**
 * Reads every counter now.
 *
 * @param src where they live
 * @returns the sample
 * @example
 * ```ts
 * import { takeSample } from "./sample.ts";
 * const s = takeSample({ control: () => undefined, vcpuTids: () => [] });
 * console.log(s.threads.size >= 1);
 * ```
 */
export function takeSample(src: StatsSources): RawSample {
  const ctl = src.control();
  const tids = src.vcpuTids();
  const vcpus = tids.map((tid, index) => {
    const byKind = new Array<number>(10).fill(0);
    let exits = 0;
    if (ctl) {
      exits = ctl.words[ctl.vcpuWord(index, VCPU_EXITS)] >>> 0;
      const base = ctl.vcpuWord(index, VCPU_EXIT_KINDS);
      for (let k = 1; k < 10; k++) byKind[k] = ctl.words[base + k] >>> 0;
    }
    return { index, tid, exits, byKind };
  });
  const l = src.loop;
  return {
    atMs: performance.now(),
    vcpus,
    threads: threadTimes(),
    loop: l && {
      iterations: l.iterations,
      wakeups: l.wakeups,
      histogram: l.histogram.slice(),
      maxUs: l.maxUs,
    },
    aio: aioPools().map((p) => ({
      threads: p.threads,
      idle: p.idleThreads,
      inFlight: p.inFlight,
      completed: p.completed,
    })),
  };
}

/** Counter difference across a 32-bit wrap. */
function delta32(now: number, before: number): number {
  return (now - before + 2 ** 32) % 2 ** 32;
}

function p99(hist: Float64Array, before?: Float64Array): number {
  let total = 0;
  const d = new Float64Array(hist.length);
  for (let b = 0; b < hist.length; b++) total += d[b] = hist[b] - (before?.[b] ?? 0);
  if (total === 0) return 0;
  const want = Math.ceil(total * 0.99);
  let seen = 0;
  for (let b = 0; b < d.length; b++) {
    seen += d[b];
    if (seen >= want) return b === 0 ? 1 : 2 ** b;
  }
  return 0;
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Rates between two samples (since `prev`; without it, absolute counts and
 * no rates), as the JSON x-query-denovmm-stats returns.
 *
 * @param cur the newer sample
 * @param prev the older one
 * @returns the statistics
 * @example
 * ```ts
 * import { summarize, takeSample } from "./sample.ts";
 * const src = { control: () => undefined, vcpuTids: () => [] };
 * const a = takeSample(src);
 * console.log(summarize(takeSample(src), a).threads.length >= 1);
 * ```
 */
export function summarize(cur: RawSample, prev?: RawSample): DenovmmStats {
  const dt = prev ? (cur.atMs - prev.atMs) / 1000 : 0;
  const rate = (n: number) => (dt > 0 ? round(n / dt) : 0);
  const pct = (s: number) => (dt > 0 ? round((100 * s) / dt) : 0);
  const vcpus = cur.vcpus.map((v) => {
    const pv = prev?.vcpus.find((x) => x.index === v.index && x.tid === v.tid);
    const perKind: Record<string, number> = {};
    for (let k = 1; k < 10; k++) {
      const n = pv ? delta32(v.byKind[k], pv.byKind[k]) : 0;
      if (n > 0 || k <= 4) perKind[EXIT_KIND_NAMES[k]] = rate(n);
    }
    const t = cur.threads.get(v.tid);
    const pt = prev?.threads.get(v.tid);
    const guest = t && pt ? t.guest - pt.guest : 0;
    const vmm = t && pt ? t.user - pt.user - guest + t.system - pt.system : 0;
    return {
      "cpu-index": v.index,
      "thread-id": v.tid,
      exits: v.exits,
      "exits-per-s": rate(pv ? delta32(v.exits, pv.exits) : 0),
      "exits-per-s-by-reason": perKind,
      "guest-pct": pct(guest),
      "vmm-pct": pct(Math.max(0, vmm)),
    };
  });
  const l = cur.loop;
  const pl = prev?.loop;
  const mainLoop = l && {
    iterations: l.iterations,
    "iterations-per-s": rate(pl ? l.iterations - pl.iterations : 0),
    "wakeups-per-s": rate(pl ? l.wakeups - pl.wakeups : 0),
    "p99-dispatch-us": p99(l.histogram, pl?.histogram),
    "max-dispatch-us": round(l.maxUs),
  };
  const aio = cur.aio.map((a, i) => ({
    threads: a.threads,
    busy: Math.max(0, a.threads - a.idle),
    "queue-depth": a.inFlight,
    completions: a.completed,
    "completions-per-s": rate(prev?.aio[i] ? a.completed - prev.aio[i].completed : 0),
  }));
  const threads = [...cur.threads].map(([tid, t]) => {
    const p = prev?.threads.get(tid);
    return {
      "thread-id": tid,
      name: t.name,
      "user-s": round(t.user, 2),
      "system-s": round(t.system, 2),
      "cpu-pct": p ? pct(t.user - p.user + t.system - p.system) : 0,
    };
  });
  return { "interval-s": round(dt, 3), vcpus, "main-loop": mainLoop, aio, threads };
}

/** What x-query-denovmm-stats returns. */
export interface DenovmmStats {
  /** Seconds since the previous sample (0: first sample, no rates). */
  "interval-s": number;
  /** Per vCPU. */
  vcpus: {
    "cpu-index": number;
    "thread-id": number;
    exits: number;
    "exits-per-s": number;
    "exits-per-s-by-reason": Record<string, number>;
    "guest-pct": number;
    "vmm-pct": number;
  }[];
  /** The main loop. */
  "main-loop"?: {
    iterations: number;
    "iterations-per-s": number;
    "wakeups-per-s": number;
    "p99-dispatch-us": number;
    "max-dispatch-us": number;
  };
  /** Per aio pool. */
  aio: {
    threads: number;
    busy: number;
    "queue-depth": number;
    completions: number;
    "completions-per-s": number;
  }[];
  /** Per thread of the process. */
  threads: {
    "thread-id": number;
    name: string;
    "user-s": number;
    "system-s": number;
    "cpu-pct": number;
  }[];
}
