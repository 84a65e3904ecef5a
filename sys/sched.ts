/**
 * Scheduling of any thread of this process by its thread id (0 = the
 * calling thread): CPU affinity (`taskset`), policy and real-time priority
 * (`chrt`), and nice value (`renice`; per thread on Linux).
 *
 * @module
 */
import { libc } from "./libc.ts";
import { check, errno, ErrnoError } from "./errno.ts";

/** Scheduling policies (sched.h). */
export const SCHED_OTHER = 0;
/** Real-time first-in first-out. */
export const SCHED_FIFO = 1;
/** Real-time round robin. */
export const SCHED_RR = 2;
const PRIO_PROCESS = 0;
/** Largest CPU number the masks here hold. */
export const MAX_CPU = 1023;
const MASK_BYTES = 128;

/**
 * Pins a thread to CPUs.
 *
 * @param tid thread id (0: the caller)
 * @param cpus CPU numbers
 * @example
 * ```ts ignore
 * setThreadAffinity(tid, [2, 3]);
 * ```
 */
export function setThreadAffinity(tid: number, cpus: readonly number[]): void {
  const mask = new Uint8Array(MASK_BYTES);
  for (const c of cpus) {
    if (!Number.isInteger(c) || c < 0 || c > MAX_CPU) throw new RangeError(`Invalid CPU ${c}`);
    mask[c >> 3] |= 1 << (c & 7);
  }
  check(`sched_setaffinity ${tid}`, libc.sched_setaffinity(tid, BigInt(MASK_BYTES), mask));
}

/**
 * The CPUs a thread may run on.
 *
 * @param tid thread id (0: the caller)
 * @returns CPU numbers, ascending
 * @example
 * ```ts
 * import { threadAffinity } from "./sched.ts";
 * console.log(threadAffinity(0).length > 0);
 * ```
 */
export function threadAffinity(tid: number): number[] {
  const mask = new Uint8Array(MASK_BYTES);
  check(`sched_getaffinity ${tid}`, libc.sched_getaffinity(tid, BigInt(MASK_BYTES), mask));
  const cpus: number[] = [];
  for (let i = 0; i <= MAX_CPU; i++) if (mask[i >> 3] & (1 << (i & 7))) cpus.push(i);
  return cpus;
}

/**
 * Sets a thread's policy and priority.
 *
 * @param tid thread id (0: the caller)
 * @param policy SCHED_OTHER, SCHED_FIFO or SCHED_RR
 * @param priority 1..99 for real-time policies, 0 for SCHED_OTHER
 * @example
 * ```ts ignore
 * setThreadScheduler(tid, SCHED_FIFO, 10);
 * ```
 */
export function setThreadScheduler(tid: number, policy: number, priority: number): void {
  const p = new Int32Array([priority]);
  check(
    `sched_setscheduler ${tid}`,
    libc.sched_setscheduler(tid, policy, new Uint8Array(p.buffer)),
  );
}

/**
 * A thread's policy and priority.
 *
 * @param tid thread id (0: the caller)
 * @returns SCHED_* and priority
 * @example
 * ```ts
 * import { SCHED_OTHER, threadScheduler } from "./sched.ts";
 * console.log(threadScheduler(0).policy === SCHED_OTHER);
 * ```
 */
export function threadScheduler(tid: number): { policy: number; priority: number } {
  const policy = check(`sched_getscheduler ${tid}`, libc.sched_getscheduler(tid));
  const p = new Int32Array(1);
  check(`sched_getparam ${tid}`, libc.sched_getparam(tid, new Uint8Array(p.buffer)));
  // SCHED_RESET_ON_FORK may be or-ed in.
  return { policy: policy & 0xff, priority: p[0] };
}

/**
 * Sets a thread's nice value (-20..19; lowering it needs privilege).
 *
 * @param tid thread id (0: the caller)
 * @param nice the value
 * @example
 * ```ts ignore
 * setThreadNice(tid, 5);
 * ```
 */
export function setThreadNice(tid: number, nice: number): void {
  check(`setpriority ${tid}`, libc.setpriority(PRIO_PROCESS, tid, nice));
}

/**
 * A thread's nice value.
 *
 * @param tid thread id (0: the caller)
 * @returns -20..19
 * @example
 * ```ts
 * import { threadNice } from "./sched.ts";
 * console.log(threadNice(0) >= -20);
 * ```
 */
export function threadNice(tid: number): number {
  // getpriority may legitimately return -1: tell it apart through errno.
  new Int32Array(Deno.UnsafePointerView.getArrayBuffer(libc.__errno_location()!, 4))[0] = 0;
  const r = libc.getpriority(PRIO_PROCESS, tid);
  if (r === -1 && errno() !== 0) throw new ErrnoError(`getpriority ${tid}`, errno());
  return r;
}

/**
 * CPUs this process may use (its affinity at the time of the call).
 *
 * @returns CPU numbers
 * @example
 * ```ts
 * import { availableCpus } from "./sched.ts";
 * console.log(availableCpus().length >= 1);
 * ```
 */
export function availableCpus(): number[] {
  return threadAffinity(0);
}
