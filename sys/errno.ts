/**
 * errno access and the one error type for failed system calls.
 *
 * @module
 */
import { libc } from "./libc.ts";

/** Linux errno numbers by name (asm-generic/errno-base.h, errno.h). */
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  8: "ENOEXEC",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  26: "ETXTBSY",
  27: "EFBIG",
  28: "ENOSPC",
  29: "ESPIPE",
  30: "EROFS",
  32: "EPIPE",
  34: "ERANGE",
  35: "EDEADLK",
  36: "ENAMETOOLONG",
  38: "ENOSYS",
  39: "ENOTEMPTY",
  61: "ENODATA",
  62: "ETIME",
  75: "EOVERFLOW",
  95: "EOPNOTSUPP",
  98: "EADDRINUSE",
  110: "ETIMEDOUT",
  115: "EINPROGRESS",
  125: "ECANCELED",
};

/** Well-known errno values used across the project. */
export const EPERM = 1;
/** No such file or directory. */
export const ENOENT = 2;
/** Interrupted system call. */
export const EINTR = 4;
/** No such device or address. */
export const ENXIO = 6;
/** No such device. */
export const ENODEV = 19;
/** I/O error. */
export const EIO = 5;
/** Bad file descriptor. */
export const EBADF = 9;
/** Try again. */
export const EAGAIN = 11;
/** The same as EAGAIN on Linux (flock, non-blocking I/O). */
export const EWOULDBLOCK = EAGAIN;
/** Out of memory. */
export const ENOMEM = 12;
/** Permission denied. */
export const EACCES = 13;
/** Bad address. */
export const EFAULT = 14;
/** Device or resource busy. */
export const EBUSY = 16;
/** File exists. */
export const EEXIST = 17;
/** Invalid argument. */
export const EINVAL = 22;
/** Read-only file system. */
export const EROFS = 30;
/** Function not implemented. */
export const ENOSYS = 38;
/** Operation not supported. */
export const EOPNOTSUPP = 95;
/** Operation now in progress. */
export const EINPROGRESS = 115;
/** Operation canceled. */
export const ECANCELED = 125;

const errnoView = new Deno.UnsafePointerView(libc.__errno_location()!);

/**
 * The calling thread's errno, read right after a failed call.
 *
 * @returns the current errno value
 * @example
 * ```ts
 * import { errno } from "./errno.ts";
 * if (errno() === 0) console.log("no error yet");
 * ```
 */
export function errno(): number {
  return errnoView.getInt32(0);
}

/**
 * The symbolic name of an errno value, e.g. `EACCES`.
 *
 * @param code errno value
 * @returns its name, or `E<number>` when unknown
 * @example
 * ```ts
 * import { errnoName } from "./errno.ts";
 * console.log(errnoName(13)); // EACCES
 * ```
 */
export function errnoName(code: number): string {
  return ERRNO_NAMES[code] ?? `E${code}`;
}

/**
 * The C library's description of an errno value, e.g. `Permission denied`.
 *
 * @param code errno value
 * @returns the text strerror() gives
 * @example
 * ```ts
 * import { strerror } from "./errno.ts";
 * console.log(strerror(2)); // No such file or directory
 * ```
 */
export function strerror(code: number): string {
  const p = libc.strerror(code);
  return p === null ? `errno ${code}` : Deno.UnsafePointerView.getCString(p);
}

/**
 * A system call or ioctl that failed; the message names the call and errno:
 * `KVM_CREATE_VM failed: EACCES (Permission denied)`.
 */
export class ErrnoError extends Error {
  /** The errno value. */
  readonly errno: number;
  /** The errno's symbolic name. */
  readonly code: string;
  /** What was called (`open /dev/kvm`, `KVM_RUN`, ...). */
  readonly call: string;
  /** The C library's description of the errno (`Permission denied`). */
  readonly description: string;

  /**
   * @param call what failed, as it should appear in the message
   * @param code errno value
   * @example
   * ```ts
   * import { ErrnoError } from "./errno.ts";
   * console.log(new ErrnoError("KVM_CREATE_VM", 13).message);
   * ```
   */
  constructor(call: string, code: number) {
    const description = strerror(code);
    super(`${call} failed: ${errnoName(code)} (${description})`);
    this.name = "ErrnoError";
    this.errno = code;
    this.code = errnoName(code);
    this.call = call;
    this.description = description;
  }
}

/**
 * Throws an ErrnoError if a call returned a negative value; otherwise passes
 * the result through.
 *
 * @param call name used in the error message
 * @param result what the call returned
 * @returns result, when not negative
 * @example
 * ```ts
 * import { check } from "./errno.ts";
 * import { libc } from "./libc.ts";
 * const pid = check("getpid", libc.getpid());
 * ```
 */
export function check(call: string, result: number): number {
  if (result < 0) throw new ErrnoError(call, errno());
  return result;
}

/**
 * {@link check} for calls that return a 64-bit value (lseek, syscall).
 *
 * @param call name used in the error message
 * @param result what the call returned
 * @returns result as a number, when not negative
 * @example
 * ```ts
 * import { checkBig } from "./errno.ts";
 * const off = checkBig("lseek", 0n);
 * ```
 */
export function checkBig(call: string, result: bigint | number): number {
  const n = Number(result);
  if (n < 0) throw new ErrnoError(call, errno());
  return n;
}
