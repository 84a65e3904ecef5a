/**
 * ppoll(2), the one way the VMM waits on fds: a synchronous call for a
 * zero-timeout check, and the same call on Deno's blocking thread pool for
 * sleeping without blocking the JavaScript thread.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { EINTR, errno, ErrnoError } from "./errno.ts";

/** poll(2) event bits: readable. */
export const POLLIN = 1;
/** Writable. */
export const POLLOUT = 4;
/** Error condition. */
export const POLLERR = 8;
/** Hang up. */
export const POLLHUP = 16;
/** Invalid fd (not open). */
export const POLLNVAL = 32;

const SYS_ppoll = 271n;
/** sizeof(kernel sigset_t) on x86-64, for the raw syscall. */
const SIGSET_BYTES = 8n;

/**
 * ppoll on the calling thread. Use a zero timeout (or a short one): the
 * thread blocks for as long as it waits.
 *
 * @param fds address of a `struct pollfd` array (off-heap)
 * @param nfds entries in it
 * @param timeout address of a `struct timespec`, or 0n for no limit
 * @returns ready entries (0: none), or 0 when a signal interrupted the wait
 * @throws {ErrnoError} on any other failure
 * @example
 * ```ts ignore
 * const n = ppoll(pollPtr, 2n, zeroTsPtr);
 * ```
 */
export function ppoll(fds: bigint, nfds: bigint, timeout: bigint): number {
  const n = libc.syscall_i32(SYS_ppoll, fds, nfds, timeout, 0n, SIGSET_BYTES, 0n);
  if (n >= 0) return n;
  const e = errno();
  if (e === EINTR) return 0;
  throw new ErrnoError("ppoll", e);
}

/**
 * ppoll on Deno's blocking thread pool: the JavaScript thread keeps running
 * (timers, signals, Worker messages) while this one sleeps.
 *
 * @param fds address of a `struct pollfd` array (off-heap, kept alive by the caller)
 * @param nfds entries in it
 * @param timeout address of a `struct timespec`, or 0n for no limit
 * @returns ready entries; 0 on timeout or when interrupted (errno stays on the pool thread)
 * @example
 * ```ts ignore
 * const n = await ppollAsync(pollPtr, 2n, tsPtr);
 * ```
 */
export async function ppollAsync(fds: bigint, nfds: bigint, timeout: bigint): Promise<number> {
  const n = Number(await libc.syscall_nb(SYS_ppoll, fds, nfds, timeout, 0n, SIGSET_BYTES, 0n));
  return n < 0 ? 0 : n;
}
