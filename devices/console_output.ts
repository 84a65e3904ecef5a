/**
 * Batched console output for device code in vCPU threads.
 *
 * @module
 */
import { ErrnoError } from "../sys/errno.ts";
import { writeAll } from "../sys/fd.ts";

/** EPIPE: the console's reader is gone. */
const EPIPE = 32;

/**
 * Console output for a vCPU thread's serial sink: bytes are collected and
 * written with one write(2) per flush (the vCPU thread calls it at the end of
 * each exit), so a line of guest output costs one system call instead of one
 * per character.
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
    if (this.#len === 0) return;
    const n = this.#len;
    this.#len = 0;
    try {
      writeAll(this.#fd, this.#buf.subarray(0, n));
    } catch (e) {
      // A closed stdout (EPIPE) must not take the vCPU down with it.
      if (!(e instanceof ErrnoError) || e.errno !== EPIPE) throw e;
    }
  }
}
