/**
 * The request interface every aio backend implements (thread pool, io_uring),
 * so a disk can pick `aio=threads|io_uring` without other changes.
 *
 * @module
 */
import type { HostIovec } from "./iovec.ts";

/** Operations, as in QEMU's QEMU_AIO_* / POSIX. */
export type AioOp =
  | "pread"
  | "pwrite"
  | "preadv"
  | "pwritev"
  | "fsync"
  | "fdatasync"
  | "fallocate";

/** fallocate(2) mode bits (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
/** Deallocate the range (reads return zeros); needs KEEP_SIZE. */
export const FALLOC_FL_PUNCH_HOLE = 0x02;
/** Zero the range, keeping or allocating blocks. */
export const FALLOC_FL_ZERO_RANGE = 0x10;
/**
 * Not a kernel bit: the goal of this `fallocate` is zeros in the range. When
 * the file system refuses the mode (EOPNOTSUPP, EINVAL, ENOSYS) the backend
 * tries FALLOC_FL_ZERO_RANGE, then writes zeros (page-aligned, so O_DIRECT
 * files work), as QEMU's handle_aiocb_write_zeroes falls back to writing.
 */
export const AIO_FALLOC_ZERO_FALLBACK = 0x4000_0000;

/** One segment of host memory: guest RAM from `GuestMemory.hostAddress`, or any mapping. */
export interface IoVec {
  /** Host virtual address. */
  addr: bigint;
  /** Bytes. */
  len: number;
}

/**
 * A request. Give the memory as `buf` (a JS buffer; kept alive until
 * completion), as `iov` (host addresses; the caller keeps them mapped), or,
 * for `preadv`/`pwritev`, as `iovec` (an iovec array in host memory the
 * caller reuses: no per-segment work in the backend; the caller must not
 * change it until the callback runs).
 * `pread`/`pwrite` take exactly one segment and transfer all of it unless EOF
 * comes first; `preadv`/`pwritev` take up to 1024 and report what one
 * preadv(2)/pwritev(2) call did. `fsync`/`fdatasync` ignore memory and offset.
 * `fallocate` takes `mode` and `len` (no memory) and reports `len` on success.
 */
export interface AioRequest {
  /** What to do. */
  op: AioOp;
  /** An open file descriptor. */
  fd: number;
  /** File offset in bytes (0 for syncs). */
  offset?: number;
  /** Memory as a JS buffer (read into / written from without copying). */
  buf?: Uint8Array;
  /** Memory as host-address segments. */
  iov?: readonly IoVec[];
  /** Memory as a ready iovec array (`preadv`/`pwritev`; takes precedence over `iov`). */
  iovec?: HostIovec;
  /** `fallocate` only: FALLOC_FL_* bits, plus {@link AIO_FALLOC_ZERO_FALLBACK}. */
  mode?: number;
  /** `fallocate` only: bytes from `offset`. */
  len?: number;
}

/**
 * Thrown by {@link AioBackend.submit} when every request slot is busy (EAGAIN):
 * the caller retries after a completion. Other RangeErrors mean a malformed request.
 */
export class AioQueueFullError extends RangeError {
  /** @param message which queue is full */
  constructor(message: string) {
    super(message);
    this.name = "AioQueueFullError";
  }
}

/**
 * Completion callback: bytes transferred (>= 0), or a negative errno
 * (-ECANCELED when cancelled). Runs on the loop that owns the backend.
 */
export type AioCallback = (result: number) => void;

/** Most segments one request may have (IOV_MAX). */
export const IOV_MAX = 1024;

/** An aio engine bound to one event loop. */
export interface AioBackend {
  /** `threads` or `io_uring`. */
  readonly kind: "threads" | "io_uring";
  /**
   * Queues a request; cb runs later on the owning loop, exactly once.
   * Throws RangeError for malformed requests and when the queue is full.
   */
  submit(req: AioRequest, cb: AioCallback): number;
  /**
   * Cancels a request that has not started: true means cb will get
   * -ECANCELED; false means it is running or done and cb gets its real result.
   */
  cancel(handle: number): boolean;
  /** Requests submitted whose callback has not run yet. */
  readonly inFlight: number;
  /** Waits for in-flight requests, then releases threads/rings. */
  close(): Promise<void>;
}
