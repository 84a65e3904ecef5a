/**
 * Checking and installing a role table before the guest runs: every CPU
 * exists and is allowed, every policy is permitted (tried on the main
 * thread and undone), the cgroup is a writable cgroup v2 directory whose
 * cpuset holds the CPUs asked for. Only then is anything applied: the
 * process moves into the cgroup, the table is published for the threads to
 * come, and the main thread takes the `main` role. A failed check applies
 * nothing and says what is wrong in one line.
 *
 * @module
 */
import { ErrnoError } from "../sys/errno.ts";
import { closeFd, O_WRONLY, openFile } from "../sys/fd.ts";
import { readProcText } from "../sys/procfs.ts";
import {
  availableCpus,
  SCHED_OTHER,
  setThreadAffinity,
  setThreadNice,
  setThreadScheduler,
  threadNice,
  threadScheduler,
} from "../sys/sched.ts";
import {
  applyThreadPolicy,
  policyForThread,
  publishRoleTable,
  type RoleTable,
  type ThreadRolePolicy,
  writeCgroupFile,
} from "../sys/thread_role.ts";
import { buildRoleTable, PlacementError, type PlacementFlags } from "./policy.ts";

/** What the machine will have, to check role names against. */
export interface MachineShape {
  /** vCPU count. */
  cpus: number;
  /** I/O thread indexes in use. */
  iothreads?: readonly number[];
}

/** A checked placement, ready to install. */
export interface Placement {
  /** The role table threads will apply. */
  table: RoleTable;
  /** cgroup v2 directory for the whole process, if asked. */
  cgroup?: string;
}

const FAMILIES = ["main", "vcpu", "iothread", "aio", "vnc-worker"];

function describe(cpus: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < cpus.length; i++) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j] + 1) j++;
    parts.push(i === j ? `${cpus[i]}` : `${cpus[i]}-${cpus[j]}`);
    i = j;
  }
  return parts.join(",");
}

function exists(path: string): boolean {
  try {
    readProcText(path, 1 << 16);
    return true;
  } catch {
    return false;
  }
}

function checkWritable(path: string, what: string): void {
  try {
    closeFd(openFile(path, O_WRONLY));
  } catch (e) {
    const code = e instanceof ErrnoError ? e.code : String(e);
    throw new PlacementError(`${what}: cannot write ${path} (${code})`);
  }
}

function checkCgroup(dir: string, table: RoleTable): void {
  if (!exists(`${dir}/cgroup.procs`)) {
    throw new PlacementError(`--cgroup '${dir}': not a cgroup v2 directory (no cgroup.procs)`);
  }
  checkWritable(`${dir}/cgroup.procs`, `--cgroup '${dir}'`);
  let allowed: number[] | undefined;
  try {
    const text = readProcText(`${dir}/cpuset.cpus.effective`).trim();
    if (text) allowed = buildRoleTable({ affinity: `main=${text}` }).main.cpus;
  } catch {
    allowed = undefined; // no cpuset controller there: nothing to check
  }
  for (const [role, p] of Object.entries(table)) {
    const bad = p.cpus?.filter((c) => allowed && !allowed.includes(c)) ?? [];
    if (bad.length) {
      throw new PlacementError(
        `${role}: CPU ${bad[0]} is outside the cpuset of --cgroup '${dir}' (${describe(allowed!)})`,
      );
    }
  }
  // Threaded mode: sub-cgroups named after roles take those threads.
  for (const role of new Set([...FAMILIES, ...Object.keys(table)])) {
    const sub = `${dir}/${role}`;
    if (!exists(`${sub}/cgroup.threads`)) continue;
    checkWritable(`${sub}/cgroup.threads`, `--cgroup '${dir}' (threaded ${role})`);
    table[role] = { ...table[role], cgroup: sub };
  }
}

function tryOnMain(role: string, p: ThreadRolePolicy): void {
  const cpus = availableCpus();
  const sched = threadScheduler(0);
  const nice = threadNice(0);
  try {
    if (p.cpus) setThreadAffinity(0, p.cpus);
    if (p.policy !== undefined) setThreadScheduler(0, p.policy, p.priority ?? 0);
    // Raising nice is always allowed (and could not be undone): only try lowering it.
    if (p.nice !== undefined && p.nice < nice) setThreadNice(0, p.nice);
  } catch (e) {
    const code = e instanceof ErrnoError ? e.code : String(e);
    const what = p.policy !== undefined && p.policy !== SCHED_OTHER
      ? `real-time priority ${p.priority} (needs CAP_SYS_NICE or RLIMIT_RTPRIO >= ${p.priority})`
      : p.nice !== undefined && p.nice < nice
      ? `nice ${p.nice} (lowering nice needs CAP_SYS_NICE or RLIMIT_NICE)`
      : `CPUs ${describe(p.cpus ?? [])}`;
    throw new PlacementError(`${role}: ${what} not permitted (${code})`);
  } finally {
    setThreadAffinity(0, cpus);
    setThreadScheduler(0, sched.policy, sched.priority);
    if (threadNice(0) !== nice) setThreadNice(0, nice);
  }
}

/**
 * Parses and checks the placement flags against the machine and the host;
 * applies nothing (policies are tried on the calling thread and undone).
 *
 * @param flags the flags as typed
 * @param shape vCPU count and I/O threads, to check role names
 * @returns the placement, or undefined when no flag asks for any
 * @throws PlacementError naming the problem in one line
 * @example
 * ```ts ignore
 * const p = checkPlacement({ sched: "vcpu=nice:5" }, { cpus: 2 });
 * if (p) installPlacement(p);
 * ```
 */
export function checkPlacement(flags: PlacementFlags, shape: MachineShape): Placement | undefined {
  const table = buildRoleTable(flags);
  if (Object.keys(table).length === 0 && flags.cgroup === undefined) return undefined;
  const available = availableCpus();
  for (const [role, p] of Object.entries(table)) {
    const v = /^vcpu-(\d+)$/.exec(role);
    if (v && Number(v[1]) >= shape.cpus) {
      throw new PlacementError(`${role} named, but the machine has ${shape.cpus} vCPU(s)`);
    }
    const io = /^iothread-(\d+)$/.exec(role);
    if (io && !(shape.iothreads ?? []).includes(Number(io[1]))) {
      throw new PlacementError(`${role} named, but no disk uses iothread=${io[1]}`);
    }
    const bad = p.cpus?.find((c) => !available.includes(c));
    if (bad !== undefined) {
      throw new PlacementError(
        `${role}: CPU ${bad} is not available (this process may use ${describe(available)})`,
      );
    }
  }
  if (flags.cgroup !== undefined) checkCgroup(flags.cgroup, table);
  for (const [role, p] of Object.entries(table)) tryOnMain(role, { ...p, cgroup: undefined });
  return { table, cgroup: flags.cgroup };
}

/**
 * Installs a checked placement: moves the process into its cgroup, publishes
 * the table for threads yet to start, applies the `main` role here. Call on
 * the main thread before any Worker starts.
 *
 * @param p from {@link checkPlacement}
 * @example
 * ```ts ignore
 * installPlacement(checkPlacement(flags, { cpus: 2 })!);
 * ```
 */
export function installPlacement(p: Placement): void {
  if (p.cgroup !== undefined) writeCgroupFile(`${p.cgroup}/cgroup.procs`, `${Deno.pid}\n`);
  publishRoleTable(p.table);
  applyThreadPolicy(0, policyForThread(p.table, "main"));
}
