/**
 * Per-thread identity and isolation: thread ids, names, CPU affinity,
 * real-time priority, and signals aimed at one thread.
 *
 * Deno Workers are OS threads; these calls act on the calling thread, so a
 * Worker names and pins itself at start-up.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { check, checkBig, errno, ErrnoError } from "./errno.ts";
import { cstring } from "./fd.ts";
import { applyOwnRole } from "./thread_role.ts";

const SYS_gettid = 186n;
const SYS_tgkill = 234n;
const PR_SET_NAME = 15;
const PR_GET_NAME = 16;

/** SIGUSR2: the vCPU kick signal (SIGUSR1 would open Deno's inspector). */
export const SIGUSR2 = 12;

/**
 * The kernel thread id of the calling thread.
 *
 * @returns the TID
 */
export function gettid(): number {
  return Number(libc.syscall(SYS_gettid, 0n, 0n, 0n, 0n, 0n, 0n));
}

/**
 * The process id.
 *
 * @returns the PID
 */
export function getpid(): number {
  return libc.getpid();
}

/**
 * Names the calling thread (shown by `ps -L`, `top -H`, /proc/PID/task/TID/comm).
 * Linux keeps 15 bytes. The thread then takes its role's placement and
 * priority, if the VMM published a role table (sys/thread_role.ts).
 *
 * @param name e.g. `vcpu-0`
 */
export function setThreadName(name: string): void {
  check("prctl PR_SET_NAME", libc.prctl_buf(PR_SET_NAME, cstring(name.slice(0, 15)), 0n, 0n, 0n));
  applyOwnRole(name);
}

/**
 * The calling thread's name.
 *
 * @returns the name
 */
export function threadName(): string {
  const b = new Uint8Array(16);
  check("prctl PR_GET_NAME", libc.prctl_buf(PR_GET_NAME, b, 0n, 0n, 0n));
  const end = b.indexOf(0);
  return new TextDecoder().decode(b.subarray(0, end < 0 ? 16 : end));
}

/**
 * Pins the calling thread to a set of CPUs (like `taskset` / a cpuset).
 *
 * @param cpus CPU numbers
 */
export function setAffinity(cpus: readonly number[]): void {
  const mask = new Uint8Array(128);
  for (const c of cpus) {
    if (!Number.isInteger(c) || c < 0 || c >= 1024) throw new RangeError(`Invalid CPU number ${c}`);
    mask[c >> 3] |= 1 << (c & 7);
  }
  check("sched_setaffinity", libc.sched_setaffinity(0, 128n, mask));
}

/**
 * The CPUs the calling thread may run on.
 *
 * @returns CPU numbers
 */
export function getAffinity(): number[] {
  const mask = new Uint8Array(128);
  check("sched_getaffinity", libc.sched_getaffinity(0, 128n, mask));
  const cpus: number[] = [];
  for (let i = 0; i < 1024; i++) if (mask[i >> 3] & (1 << (i & 7))) cpus.push(i);
  return cpus;
}

/** Scheduling policies. */
export const SCHED_OTHER = 0;
/** Real-time first-in first-out. */
export const SCHED_FIFO = 1;
/** Real-time round robin. */
export const SCHED_RR = 2;

/**
 * Sets the calling thread's policy and priority (like `chrt`).
 *
 * @param policy SCHED_OTHER, SCHED_FIFO or SCHED_RR
 * @param priority 1..99 for real-time policies, 0 otherwise
 */
export function setScheduler(policy: number, priority = 0): void {
  const p = new Int32Array([priority]);
  check("sched_setscheduler", libc.sched_setscheduler(0, policy, new Uint8Array(p.buffer)));
}

/**
 * The calling thread's scheduling policy.
 *
 * @returns SCHED_* value
 */
export function getScheduler(): number {
  return check("sched_getscheduler", libc.sched_getscheduler(0));
}

/**
 * Sends a signal to one thread of this process.
 *
 * @param tid target thread id
 * @param sig signal number
 */
export function tgkill(tid: number, sig: number): void {
  const r = checkBig(
    "tgkill",
    libc.syscall(SYS_tgkill, BigInt(libc.getpid()), BigInt(tid), BigInt(sig), 0n, 0n, 0n),
  );
  if (r < 0) throw new ErrnoError("tgkill", errno());
}
