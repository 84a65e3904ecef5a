/**
 * Placement and priority by thread role, applied by each thread to itself
 * when it starts.
 *
 * The main thread publishes a {@link RoleTable} once, before it starts any
 * Worker, in the process environment through libc `setenv` (process-wide,
 * readable from every Worker isolate through libc `getenv`, no `--allow-env`
 * needed). `setThreadName` (sys/thread.ts), which every VMM thread calls
 * first (`vcpu-N`, `iothread-N`, `aio-N`, `vnc-worker`), then applies the
 * entry for its role: so threads that start later (aio Workers grow and
 * shrink) get their role's settings too. A role's family (`vcpu`, `aio`,
 * `iothread`) gives defaults that the exact name (`vcpu-1`) overrides.
 *
 * The table is validated and test-applied before it is published
 * (placement/), so applying it here is not expected to fail; if it does,
 * the thread says so once on stderr and runs on.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { cstring } from "./fd.ts";
import { setThreadAffinity, setThreadNice, setThreadScheduler } from "./sched.ts";
import { check } from "./errno.ts";
import { closeFd, O_WRONLY, openFile } from "./fd.ts";

/** Settings for one role; absent fields are left as they are. */
export interface ThreadRolePolicy {
  /** CPUs to pin to. */
  cpus?: number[];
  /** SCHED_OTHER, SCHED_FIFO or SCHED_RR. */
  policy?: number;
  /** Real-time priority (1..99) for FIFO/RR. */
  priority?: number;
  /** Nice value (SCHED_OTHER). */
  nice?: number;
  /** A threaded cgroup v2 directory to move the thread into. */
  cgroup?: string;
}

/** Role name (`main`, `vcpu`, `vcpu-0`, `aio`, ...) to settings. */
export type RoleTable = Record<string, ThreadRolePolicy>;

/** The environment variable that carries the table inside this process. */
export const ROLE_TABLE_ENV = "DENOVMM_THREAD_ROLES";
const SYS_gettid = 186n;

let cached: RoleTable | null | undefined;

/**
 * Publishes the table for every thread of this process (call once, before
 * starting Workers; `setenv` is not safe while other threads read it).
 *
 * @param table the roles
 * @example
 * ```ts ignore
 * publishRoleTable({ vcpu: { cpus: [2, 3] }, aio: { nice: 10 } });
 * ```
 */
export function publishRoleTable(table: RoleTable): void {
  check("setenv", libc.setenv(cstring(ROLE_TABLE_ENV), cstring(JSON.stringify(table)), 1));
  cached = table;
}

/**
 * The published table, if any (read once per isolate).
 *
 * @returns the table or undefined
 * @example
 * ```ts
 * import { roleTable } from "./thread_role.ts";
 * console.log(roleTable() === undefined || typeof roleTable() === "object");
 * ```
 */
export function roleTable(): RoleTable | undefined {
  if (cached === undefined) {
    const p = libc.getenv(cstring(ROLE_TABLE_ENV));
    cached = null;
    if (p !== null) {
      try {
        cached = JSON.parse(Deno.UnsafePointerView.getCString(p)) as RoleTable;
      } catch {
        cached = null;
      }
    }
  }
  return cached ?? undefined;
}

/**
 * The role family of a thread name: `vcpu-3` -> `vcpu`, `aio-12` -> `aio`.
 *
 * @param name thread name
 * @returns the family (the name itself when it has no number)
 * @example
 * ```ts
 * import { roleFamily } from "./thread_role.ts";
 * console.log(roleFamily("iothread-0")); // "iothread"
 * ```
 */
export function roleFamily(name: string): string {
  return name.replace(/-\d+$/, "");
}

/**
 * The settings for a thread name: its family's, overridden by its own.
 *
 * @param table the roles
 * @param name thread name
 * @returns the merged settings (empty when the table names neither)
 * @example
 * ```ts
 * import { policyForThread } from "./thread_role.ts";
 * const p = policyForThread({ vcpu: { nice: 5 }, "vcpu-1": { cpus: [3] } }, "vcpu-1");
 * console.log(p); // { nice: 5, cpus: [3] }
 * ```
 */
export function policyForThread(table: RoleTable, name: string): ThreadRolePolicy {
  const family = roleFamily(name);
  return {
    ...(family !== name && Object.hasOwn(table, family) ? table[family] : {}),
    ...(Object.hasOwn(table, name) ? table[name] : {}),
  };
}

/**
 * Applies settings to one thread: cgroup first (its cpuset bounds the
 * affinity), then CPUs, policy, nice.
 *
 * @param tid thread id (0: the caller)
 * @param p the settings
 * @example
 * ```ts ignore
 * applyThreadPolicy(0, { cpus: [1], policy: SCHED_FIFO, priority: 10 });
 * ```
 */
export function applyThreadPolicy(tid: number, p: ThreadRolePolicy): void {
  const id = tid === 0 ? Number(libc.syscall(SYS_gettid, 0n, 0n, 0n, 0n, 0n, 0n)) : tid;
  if (p.cgroup !== undefined) writeCgroupFile(`${p.cgroup}/cgroup.threads`, `${id}\n`);
  if (p.cpus !== undefined) setThreadAffinity(id, p.cpus);
  if (p.policy !== undefined) setThreadScheduler(id, p.policy, p.priority ?? 0);
  if (p.nice !== undefined) setThreadNice(id, p.nice);
}

/**
 * Writes a cgroup control file (cgroup.procs, cgroup.threads).
 *
 * @param path the file
 * @param text what to write
 */
export function writeCgroupFile(path: string, text: string): void {
  const fd = openFile(path, O_WRONLY);
  try {
    const b = cstring(text).subarray(0, -1);
    check(`write ${path}`, Number(libc.write(fd, b, BigInt(b.length))));
  } finally {
    closeFd(fd);
  }
}

let warned = false;

/**
 * Applies the published role table to the calling thread, named `name`.
 * Called by `setThreadName`; a no-op when no table was published.
 *
 * @param name the thread's name
 * @example
 * ```ts ignore
 * applyOwnRole("aio-3");
 * ```
 */
export function applyOwnRole(name: string): void {
  const table = roleTable();
  if (!table) return;
  try {
    applyThreadPolicy(0, policyForThread(table, name));
  } catch (e) {
    if (!warned) {
      warned = true;
      console.error(`denovmm: ${name}: placement not applied: ${(e as Error).message}`);
    }
  }
}
