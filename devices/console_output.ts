/**
 * Batched console output for device code in vCPU threads.
 *
 * @module
 */
import { errno, ErrnoError } from "../sys/errno.ts";
import { writeI32 } from "../sys/libc.ts";

/** EPIPE: the console's reader is gone. */
const EPIPE = 32;
/** EINTR and EAGAIN: write again. */
const EINTR = 4;
const EAGAIN = 11;

/**
 * Console output for a vCPU thread's serial sink: bytes are collected and
 * written with one write(2) per flush (the vCPU thread calls it at the end of
 * each exit), so a line of guest output costs one system call instead of one
 * per character. A flush allocates nothing (a guest that prints takes an exit
 * per byte): the buffer goes to write(2) whole with its length, and the rest
 * of a partial write moves to its start.
 *
 * @example
 * ```ts
 * import { ConsoleOutput } from "./console_output.ts";
 * const out = new ConsoleOutput(1);
 * for (const c of "hello\n") out.push(c.charCodeAt(0));
 * out.flush();
 * ```
 */
export class ConsoleOutput {
  #fd: number;
  #buf: Uint8Array<ArrayBuffer>;
  #len = 0;

  /**
   * Creates an empty buffer for one output descriptor.
   *
   * @param fd where bytes go (1 for stdout)
   * @param capacity bytes buffered before an automatic flush
   */
  constructor(fd: number, capacity = 4096) {
    this.#fd = fd;
    this.#buf = new Uint8Array(capacity);
  }

  /** Bytes waiting for flush(). */
  get buffered(): number {
    return this.#len;
  }

  /**
   * Queues one byte (the serial sink); flushes when the buffer fills.
   *
   * @param byte the byte
   */
  push(byte: number): void {
    this.#buf[this.#len++] = byte;
    if (this.#len === this.#buf.length) this.flush();
  }

  /** Writes what is queued. */
  flush(): void {
    let n = this.#len;
    this.#len = 0;
    while (n > 0) {
      const w = writeI32(this.#fd, this.#buf, n);
      if (w < 0) {
        const e = errno();
        if (e === EINTR || e === EAGAIN) continue;
        // A closed stdout (EPIPE) must not take the vCPU down with it.
        if (e === EPIPE) return;
        throw new ErrnoError("write", e);
      }
      if (w < n) this.#buf.copyWithin(0, w, n);
      n -= w;
    }
  }
}
