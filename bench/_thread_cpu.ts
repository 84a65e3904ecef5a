/**
 * CPU time of a process's threads, read from `/proc/PID/task/TID/stat`,
 * summed by thread role: numbered names lose their number (`vcpu-0` →
 * `vcpu-*`, QEMU's `CPU 0/KVM` → `CPU #/KVM`), and the process's first
 * thread is `main` whatever its name. For the benchmarks that show where a
 * VMM's CPU goes during one phase of a guest's work (two samples, a delta).
 *
 * @module
 */

/** USER_HZ: the unit of utime and stime in /proc. */
const TICKS_PER_S = 100;

/** Thread role of a thread name. */
export function threadRole(comm: string): string {
  return comm.replace(/-\d+$/, "-*").replace(/^CPU \d+\/KVM$/, "CPU #/KVM");
}

/**
 * A thread's name and CPU seconds (user + system) from the text of its
 * `/proc/PID/task/TID/stat`.
 */
export function parseTaskStat(stat: string): { comm: string; cpuS: number } {
  const close = stat.lastIndexOf(")");
  const f = stat.slice(close + 2).split(" ");
  return {
    comm: stat.slice(stat.indexOf("(") + 1, close),
    cpuS: (Number(f[11]) + Number(f[12])) / TICKS_PER_S,
  };
}

/**
 * CPU seconds (user + system) by thread role, for every thread of `pid`
 * alive now; null when the process is gone.
 */
export function threadCpu(pid: number): Map<string, number> | null {
  const out = new Map<string, number>();
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const { comm, cpuS } = parseTaskStat(
          Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/stat`),
        );
        const role = t.name === String(pid) ? "main" : threadRole(comm);
        out.set(role, (out.get(role) ?? 0) + cpuS);
      } catch {
        // The thread ended.
      }
    }
  } catch {
    return null;
  }
  return out;
}

/** What each role spent between two samples (roles that ended count from 0). */
export function cpuDelta(
  before: Map<string, number> | null,
  after: Map<string, number> | null,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after ?? []) out.set(k, v - (before?.get(k) ?? 0));
  return out;
}
