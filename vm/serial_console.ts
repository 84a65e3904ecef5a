/**
 * The guest's first serial port as seen from TypeScript: what the guest
 * writes arrives on {@link SerialConsole.readable} (and is searched by
 * {@link SerialConsole.waitFor}); what you write reaches the UART's receive
 * FIFO as if typed. The bytes travel through a pipe the vCPU threads write
 * to and the main loop reads, so the vCPU threads never wait for a reader.
 *
 * @module
 */
import { closeFd, O_NONBLOCK, pipe, readInto } from "../sys/fd.ts";
import { libc } from "../sys/libc.ts";
import { check, EAGAIN } from "../sys/errno.ts";
import type { EventLoop, Timer } from "../mainloop/types.ts";

/**
 * How much recent output {@link VmSerial.waitFor} can search (characters).
 *
 * @example
 * ```ts
 * import { SERIAL_HISTORY_CHARS } from "./serial_console.ts";
 * console.log(SERIAL_HISTORY_CHARS); // 1048576
 * ```
 */
export const SERIAL_HISTORY_CHARS = 1 << 20;
/** How often input the guest has not taken yet is offered again. */
const INPUT_RETRY_MS = 5;
const F_SETFL = 4;

/** Where {@link SerialConsole} puts input (the UART's FIFO); returns bytes taken. */
export type SerialInputSink = (bytes: Uint8Array) => number;

/**
 * A {@link VmSerial.waitFor} that ran out of time.
 *
 * @example
 * ```ts
 * import { SerialTimeoutError, type VmSerial } from "./serial_console.ts";
 * export async function sawPanic(serial: VmSerial): Promise<boolean> {
 *   try {
 *     await serial.waitFor("Kernel panic", { timeoutMs: 5_000 });
 *     return true;
 *   } catch (e) {
 *     if (e instanceof SerialTimeoutError) return false;
 *     throw e;
 *   }
 * }
 * ```
 */
export class SerialTimeoutError extends Error {
  /**
   * Creates the error.
   *
   * @param message what was awaited, and how long
   */
  constructor(message: string) {
    super(message);
    this.name = "SerialTimeoutError";
  }
}

/**
 * The guest's first serial port: its output as streams and text you can
 * wait on, and input typed into its receive FIFO.
 *
 * With `serial: "stdio"` in the config the output goes to the process's
 * stdout instead, and the readable side stays silent.
 *
 * @example
 * ```ts
 * import type { VmSerial } from "./serial_console.ts";
 * // Logs in on a getty and returns the shell prompt's line.
 * export async function login(serial: VmSerial, user: string): Promise<string> {
 *   await serial.waitFor(/login: $/m, { timeoutMs: 120_000 });
 *   await serial.write(`${user}\n`);
 *   return (await serial.waitFor(/^.*[#$] $/m, { timeoutMs: 30_000 }))[0];
 * }
 * ```
 */
export interface VmSerial {
  /**
   * A new stream of the guest's output from now on (each read of this
   * property gets its own stream); it closes when the VM is closed.
   */
  readonly readable: ReadableStream<Uint8Array>;
  /** A stream of input to the guest. */
  readonly writable: WritableStream<Uint8Array>;
  /** The recent output (up to {@link SERIAL_HISTORY_CHARS} characters) as text. */
  readonly text: string;
  /**
   * Types into the guest's serial port.
   *
   * @param data text (UTF-8) or bytes
   * @returns resolves when the UART has taken every byte
   */
  write(data: string | Uint8Array): Promise<void>;
  /**
   * Offers bytes to the UART at once, behind anything {@link VmSerial.write}
   * queued: for a caller with its own buffer (a terminal).
   *
   * @param bytes input; read only during the call
   * @returns how many the UART took (offer the rest later)
   */
  offer(bytes: Uint8Array): number;
  /**
   * Waits until the output after the end of the previous match matches
   * `pattern`; the next search starts after this match (expect-style).
   * Output arrives in pieces, so `$` may match at the end of what has
   * arrived so far: match `\n` to mean the end of a line.
   *
   * @param pattern a RegExp, or a string to find literally
   * @param options `timeoutMs`: how long to wait (default: no limit)
   * @returns the match
   * @throws {SerialTimeoutError} when the time runs out
   */
  waitFor(pattern: RegExp | string, options?: { timeoutMs?: number }): Promise<RegExpExecArray>;
}

interface Waiter {
  re: RegExp;
  resolve: (m: RegExpExecArray) => void;
  reject: (e: Error) => void;
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * The {@link VmSerial} of a VM: a pipe from the vCPU threads read by the
 * main loop, and input queued for the UART.
 *
 * @example
 * ```ts ignore
 * const serial = new SerialConsole(loop);
 * serial.input = (bytes) => uart.enqueueInput(bytes);
 * ```
 */
export class SerialConsole implements VmSerial {
  readonly #loop: EventLoop;
  readonly #readFd: number;
  /** The fd vCPU threads write console bytes to. */
  readonly writeFd: number;
  readonly #buf = new Uint8Array(65536);
  readonly #decoder = new TextDecoder();
  #text = "";
  #cursor = 0;
  #waiters: Waiter[] = [];
  #controllers = new Set<ReadableStreamDefaultController<Uint8Array>>();
  #input: SerialInputSink | null = null;
  #pending: Uint8Array[] = [];
  #pendingDone: (() => void)[] = [];
  #retry: Timer;
  #closed = false;

  /** @param loop the main loop, which reads the guest's output */
  constructor(loop: EventLoop) {
    this.#loop = loop;
    // The read end only is non-blocking: a vCPU thread writing to a full
    // pipe waits for the main loop rather than dropping guest output.
    [this.#readFd, this.writeFd] = pipe();
    check("fcntl F_SETFL", libc.fcntl(this.#readFd, F_SETFL, BigInt(O_NONBLOCK)));
    loop.setFdHandler(this.#readFd, { read: () => this.#drain() });
    this.#retry = loop.timer("monotonic", () => this.#flushInput());
  }

  /** Where input goes from now on (the builder sets it at each (re)build). */
  set input(sink: SerialInputSink | null) {
    this.#input = sink;
    if (sink) this.#flushInput();
  }

  /**
   * A new stream of the guest's output from now on (each call gets its own).
   *
   * @returns the bytes as they arrive; it closes when the VM is closed
   */
  get readable(): ReadableStream<Uint8Array> {
    let ctl!: ReadableStreamDefaultController<Uint8Array>;
    return new ReadableStream<Uint8Array>({
      start: (c) => {
        ctl = c;
        if (this.#closed) c.close();
        else this.#controllers.add(c);
      },
      cancel: () => {
        this.#controllers.delete(ctl);
      },
    });
  }

  /** A stream of input to the guest. */
  get writable(): WritableStream<Uint8Array> {
    return new WritableStream<Uint8Array>({ write: (chunk) => this.write(chunk) });
  }

  /** Everything the guest printed that is still in the history, as text. */
  get text(): string {
    return this.#text;
  }

  /**
   * Offers bytes to the UART at once, behind anything {@link write} queued.
   * For a caller with its own buffer (the terminal).
   *
   * @param bytes input; valid only during the call
   * @returns how many the UART took (the caller offers the rest later)
   */
  offer(bytes: Uint8Array): number {
    if (this.#pending.length > 0 || !this.#input) return 0;
    return this.#input(bytes);
  }

  /**
   * Types into the guest's serial port; resolves when the UART has taken
   * every byte.
   *
   * @param data text (UTF-8) or bytes
   * @returns resolves once delivered
   */
  write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data.slice();
    if (this.#closed) return Promise.reject(new Error("The VM is closed"));
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#pending.push(bytes);
    this.#pendingDone.push(resolve);
    this.#flushInput();
    return promise;
  }

  /**
   * Waits until the guest's output, after the end of the previous match,
   * matches `pattern`; the next search starts after this match.
   *
   * @param pattern a RegExp, or a string to find literally
   * @param options `timeoutMs` (default: no limit)
   * @returns the match
   * @throws {SerialTimeoutError} when the time runs out
   */
  waitFor(
    pattern: RegExp | string,
    options: { timeoutMs?: number } = {},
  ): Promise<RegExpExecArray> {
    const source = typeof pattern === "string"
      ? pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
      : pattern.source;
    const flags = typeof pattern === "string" ? "g" : pattern.flags.replace("g", "") + "g";
    const re = new RegExp(source, flags.replace("y", ""));
    const { promise, resolve, reject } = Promise.withResolvers<RegExpExecArray>();
    const w: Waiter = { re, resolve, reject };
    if (this.#match(w)) return promise;
    if (this.#closed) {
      reject(new Error(`The VM is closed before the output matched ${re}`));
      return promise;
    }
    if (options.timeoutMs !== undefined) {
      w.timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        reject(
          new SerialTimeoutError(`No output matched ${re} within ${options.timeoutMs} ms`),
        );
      }, options.timeoutMs);
    }
    this.#waiters.push(w);
    return promise;
  }

  #match(w: Waiter): boolean {
    w.re.lastIndex = this.#cursor;
    const m = w.re.exec(this.#text);
    if (!m) return false;
    this.#cursor = m.index + m[0].length;
    if (w.timer !== undefined) clearTimeout(w.timer);
    w.resolve(m);
    return true;
  }

  #drain(): void {
    for (;;) {
      const n = readInto(this.#readFd, this.#buf);
      if (n === -EAGAIN || n === 0) return;
      if (n < 0) return;
      this.#deliver(this.#buf.subarray(0, n));
      if (n < this.#buf.length) return;
    }
  }

  #deliver(bytes: Uint8Array): void {
    for (const c of this.#controllers) c.enqueue(bytes.slice());
    this.#text += this.#decoder.decode(bytes, { stream: true });
    if (this.#text.length > SERIAL_HISTORY_CHARS) {
      const cut = this.#text.length - SERIAL_HISTORY_CHARS;
      this.#text = this.#text.slice(cut);
      this.#cursor = Math.max(0, this.#cursor - cut);
    }
    this.#waiters = this.#waiters.filter((w) => !this.#match(w));
  }

  #flushInput(): void {
    const sink = this.#input;
    if (!sink) return;
    while (this.#pending.length > 0) {
      const head = this.#pending[0];
      const n = head.length === 0 ? 0 : sink(head);
      if (n < head.length) {
        this.#pending[0] = head.subarray(n);
        this.#retry.mod(this.#loop.now("monotonic") + INPUT_RETRY_MS * 1e6);
        return;
      }
      this.#pending.shift();
      this.#pendingDone.shift()!();
    }
  }

  /** Reads what is left, ends the streams and fails pending waits. Main loop thread. */
  close(): void {
    if (this.#closed) return;
    this.#drain();
    this.#closed = true;
    this.#retry.del();
    this.#loop.setFdHandler(this.#readFd, null);
    closeFd(this.#readFd);
    closeFd(this.writeFd);
    for (const c of this.#controllers) c.close();
    this.#controllers.clear();
    for (const w of this.#waiters) {
      if (w.timer !== undefined) clearTimeout(w.timer);
      w.reject(new Error(`The VM ended before the output matched ${w.re}`));
    }
    this.#waiters = [];
  }
}
