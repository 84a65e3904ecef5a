/**
 * The request interface every aio backend implements (thread pool, io_uring),
 * so a disk can pick `aio=threads|io_uring` without other changes.
 *
 * @module
 */

/** Operations, as in QEMU's QEMU_AIO_* / POSIX. */
export type AioOp = "pread" | "pwrite" | "preadv" | "pwritev" | "fsync" | "fdatasync";

/** One segment of host memory: guest RAM from `GuestMemory.hostAddress`, or any mapping. */
export interface IoVec {
  /** Host virtual address. */
  addr: bigint;
  /** Bytes. */
  len: number;
}

/**
 * A request. Give the memory either as `buf` (a JS buffer; kept alive until
 * completion) or as `iov` (host addresses; the caller keeps them mapped).
 * `pread`/`pwrite` take exactly one segment and transfer all of it unless EOF
 * comes first; `preadv`/`pwritev` take up to 1024 and report what one
 * preadv(2)/pwritev(2) call did. `fsync`/`fdatasync` ignore memory and offset.
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
