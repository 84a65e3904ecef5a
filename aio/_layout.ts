/**
 * Shared-memory layout of the thread pool, used by the pool and its Workers.
 *
 * @module
 */

/** Header words (Int32). */
export const H_LOCK = 0;
/** Queued requests no worker has taken (a counting semaphore). */
export const H_AVAIL = 1;
/** Workers waiting for work. */
export const H_IDLE = 2;
/** Live workers. */
export const H_THREADS = 3;
/** Set when the pool closes. */
export const H_STOP = 4;
/** Next submission-ring position to take. */
export const H_HEAD = 5;
/** Next completion-ring position to fill. */
export const H_CTAIL = 6;
/** Minimum workers kept when idle. */
export const H_MIN = 7;
/** Idle timeout in ms. */
export const H_IDLE_MS = 8;
/** Header size in words. */
export const HEADER_WORDS = 16;

/** Slot states. */
export const S_FREE = 0;
/** Waiting in the queue. */
export const S_QUEUED = 1;
/** A worker is executing it. */
export const S_RUNNING = 2;
/** Finished; result valid. */
export const S_DONE = 3;
/** Cancelled while queued. */
export const S_CANCELED = 4;

/** Numeric operation codes. */
export const OP_PREAD = 1;
/** pwrite(2). */
export const OP_PWRITE = 2;
/** preadv(2). */
export const OP_PREADV = 3;
/** pwritev(2). */
export const OP_PWRITEV = 4;
/** fsync(2). */
export const OP_FSYNC = 5;
/** fdatasync(2). */
export const OP_FDATASYNC = 6;
/** fallocate(2) (mode in the iovcnt word, length in `lens`), with the zero fallback. */
export const OP_FALLOCATE = 7;

/**
 * Per-slot record, 32 bytes: i32 state, op, fd, iovcnt (bytes 0-15); f64 offset (16); f64
 * result. Slot addresses (buffer or iovec array) live in a BigUint64Array
 * `addrs`, lengths in Float64Array `lens`.
 */
export const SLOT_BYTES = 32;

/** Everything a worker needs, posted at start. */
export interface PoolShared {
  header: SharedArrayBuffer;
  slots: SharedArrayBuffer;
  addrs: SharedArrayBuffer;
  lens: SharedArrayBuffer;
  sring: SharedArrayBuffer;
  cring: SharedArrayBuffer;
  bh: { state: SharedArrayBuffer; fd: number; index: number };
  /**
   * Optional per-slot timestamps for benchmarks (2 f64 per slot: CLOCK_MONOTONIC
   * ns when a thread started the system call and when it returned).
   */
  stamps?: SharedArrayBuffer;
}

/** Spins for the pool lock (held for a few instructions only). */
export function lock(h: Int32Array): void {
  while (Atomics.compareExchange(h, H_LOCK, 0, 1) !== 0) {
    // Contention is rare and short.
  }
}

/** Releases the pool lock. */
export function unlock(h: Int32Array): void {
  Atomics.store(h, H_LOCK, 0);
}
