/**
 * The host terminal as the guest console: stdin in raw mode feeding the
 * serial port through the main loop, QEMU's Ctrl-A escapes, the terminal
 * put back however the process ends, and batched output for the vCPU
 * threads' console sink.
 *
 * @module
 */
import { check, EAGAIN, EINTR } from "../sys/errno.ts";
import {
  closeFd,
  O_NOCTTY,
  O_NONBLOCK,
  O_RDONLY,
  openFile,
  readInto,
  writeAll,
} from "../sys/fd.ts";
import { libc } from "../sys/libc.ts";
import { addRestoreHook, installSignalPolicy } from "../sys/signals.ts";
import type { EventLoop, Timer } from "../mainloop/types.ts";

/** sizeof(struct termios) with glibc on x86-64 (checked by terminal_test.ts). */
export const TERMIOS_SIZE = 60;
/** Offsets of struct termios fields. */
export const TERMIOS_OFFSETS = {
  c_iflag: 0,
  c_oflag: 4,
  c_cflag: 8,
  c_lflag: 12,
  c_line: 16,
  c_cc: 17,
  c_ispeed: 52,
  c_ospeed: 56,
} as const;

/** termios flag and index values (asm-generic/termbits.h). */
export const TERMIOS = {
  IGNBRK: 0o1,
  BRKINT: 0o2,
  PARMRK: 0o10,
  ISTRIP: 0o40,
  INLCR: 0o100,
  IGNCR: 0o200,
  ICRNL: 0o400,
  IXON: 0o2000,
  OPOST: 0o1,
  ISIG: 0o1,
  ICANON: 0o2,
  ECHO: 0o10,
  ECHONL: 0o100,
  IEXTEN: 0o100000,
  CSIZE: 0o60,
  CS8: 0o60,
  PARENB: 0o400,
  VTIME: 5,
  VMIN: 6,
  TCSANOW: 0,
  TCSAFLUSH: 2,
} as const;

const F_GETFL = 3;
const F_SETFL = 4;

/** Ctrl-A, QEMU's escape character. */
export const CTRL_A = 0x01;

const HELP = "\n" +
  "Console escapes: press Ctrl-A, then\n" +
  "  x      quit the VM\n" +
  "  h      show this help\n" +
  "  Ctrl-A send a Ctrl-A to the guest\n";

/**
 * Turns a struct termios into raw mode in place, as QEMU's stdio backend
 * does: no line editing, echo, CR/LF mapping or flow control; 8-bit bytes;
 * reads return as soon as one byte is there. Output post-processing (OPOST)
 * stays on so the host's own messages still start at column 0.
 *
 * @param termios a struct termios from tcgetattr
 * @param options keep ISIG so Ctrl-C/Ctrl-Z act on the VMM itself
 * @example
 * ```ts
 * import { makeRaw, TERMIOS_SIZE } from "./terminal.ts";
 * const t = new Uint8Array(TERMIOS_SIZE);
 * makeRaw(t);
 * ```
 */
export function makeRaw(termios: Uint8Array, options: { allowSignals?: boolean } = {}): void {
  if (termios.length < TERMIOS_SIZE) throw new RangeError("Buffer is smaller than struct termios");
  const v = new DataView(termios.buffer, termios.byteOffset, TERMIOS_SIZE);
  const T = TERMIOS;
  const o = TERMIOS_OFFSETS;
  v.setUint32(
    o.c_iflag,
    v.getUint32(o.c_iflag, true) &
      ~(T.IGNBRK | T.BRKINT | T.PARMRK | T.ISTRIP | T.INLCR | T.IGNCR | T.ICRNL | T.IXON),
    true,
  );
  v.setUint32(o.c_oflag, v.getUint32(o.c_oflag, true) | T.OPOST, true);
  let lflag = v.getUint32(o.c_lflag, true) & ~(T.ECHO | T.ECHONL | T.ICANON | T.IEXTEN);
  if (!options.allowSignals) lflag &= ~T.ISIG;
  v.setUint32(o.c_lflag, lflag, true);
  v.setUint32(o.c_cflag, (v.getUint32(o.c_cflag, true) & ~(T.CSIZE | T.PARENB)) | T.CS8, true);
  termios[o.c_cc + T.VMIN] = 1;
  termios[o.c_cc + T.VTIME] = 0;
}

/**
 * Whether fd is a terminal.
 *
 * @param fd a file descriptor
 * @returns true for a TTY
 * @example
 * ```ts
 * import { isTerminal } from "./terminal.ts";
 * console.log(isTerminal(0));
 * ```
 */
export function isTerminal(fd: number): boolean {
  return libc.isatty(fd) === 1;
}

/** How a Terminal is wired. */
export interface TerminalOptions {
  /** The main loop that polls stdin. */
  loop: EventLoop;
  /**
   * Receives guest-bound bytes (valid only during the call); returns how
   * many it took (e.g. `serial.enqueueInput`), or nothing for all of them.
   * The rest is offered again later.
   */
  onInput: (bytes: Uint8Array) => number | void;
  /** Ctrl-A x: the user asked to quit. */
  onQuit: () => void;
  /** stdin reached end of file (pipe closed, terminal hung up). */
  onEof?: () => void;
  /** Other Ctrl-A commands (the key), e.g. `c` for a monitor. */
  onEscape?: (key: number) => void;
  /** Messages for the user (help text); default: written to stderr. */
  output?: (text: string) => void;
  /** Input descriptor, default 0. */
  fd?: number;
  /** Escape character, or null for none; default Ctrl-A on a TTY, none on a pipe. */
  escape?: number | null;
  /** Keep ISIG (Ctrl-C stops the VMM instead of reaching the guest). */
  allowSignals?: boolean;
  /** Retry interval for input the guest has not taken yet (ms), default 10. */
  retryMs?: number;
}

/** Bytes of input buffered while the guest is not reading. */
const PENDING_SIZE = 4096;

/**
 * The host terminal. `start()` puts a TTY into raw mode and begins reading
 * stdin on the main loop; `close()` (or any exit: normal end, Deno.exit,
 * uncaught error, any signal that ends the process: see sys/signals.ts,
 * which `start()` installs) puts the terminal back.
 *
 * stdin is re-opened through /proc/self/fd so the non-blocking flag lands
 * on a private open file description, not on the one the shell shares; if
 * that fails (a socket), O_NONBLOCK is set on fd 0 and cleared again on
 * restore.
 *
 * @example
 * ```ts ignore
 * import { Terminal } from "./terminal.ts";
 * const term = new Terminal({
 *   loop,
 *   onInput: (bytes) => serial.enqueueInput(bytes),
 *   onQuit: () => vm.stop(),
 * });
 * term.start();
 * ```
 */
export class Terminal {
  #opts: TerminalOptions;
  #fd: number;
  #readFd = -1;
  #ownsReadFd = false;
  #savedFlags = -1;
  #saved: Uint8Array<ArrayBuffer> | null = null;
  #isTty: boolean;
  #escape: number | null;
  #escPending = false;
  #pend = new Uint8Array(PENDING_SIZE);
  #start = 0;
  #end = 0;
  #reading = false;
  #eof = false;
  #closed = false;
  #timer: Timer | null = null;
  #restoreBound = () => this.restore();
  #removeRestoreHook: (() => void) | null = null;
  #readHandler = { read: () => this.#onReadable() };

  /**
   * Wires the terminal; nothing happens until start().
   *
   * @param options the loop, input callback and quit callback
   */
  constructor(options: TerminalOptions) {
    this.#opts = options;
    this.#fd = options.fd ?? 0;
    this.#isTty = isTerminal(this.#fd);
    this.#escape = options.escape === undefined ? (this.#isTty ? CTRL_A : null) : options.escape;
  }

  /** Whether the input is a terminal. */
  get isTty(): boolean {
    return this.#isTty;
  }

  /** Whether raw mode is in effect (and will be undone). */
  get rawMode(): boolean {
    return this.#saved !== null;
  }

  /** Bytes read but not yet taken by onInput. */
  get pending(): number {
    return this.#end - this.#start;
  }

  /** Enters raw mode (on a TTY), installs the restore hooks, starts reading. */
  start(): void {
    if (this.#closed) throw new Error("Terminal is closed");
    if (this.#readFd >= 0) return;
    this.#openInput();
    globalThis.addEventListener("unload", this.#restoreBound);
    globalThis.addEventListener("error", this.#restoreBound);
    globalThis.addEventListener("unhandledrejection", this.#restoreBound);
    installSignalPolicy();
    this.#removeRestoreHook = addRestoreHook(this.#restoreBound);
    if (this.#isTty) {
      const saved = new Uint8Array(TERMIOS_SIZE);
      if (libc.tcgetattr(this.#fd, saved) === 0) {
        const raw = saved.slice();
        makeRaw(raw, { allowSignals: this.#opts.allowSignals });
        check("tcsetattr", libc.tcsetattr(this.#fd, TERMIOS.TCSANOW, raw));
        this.#saved = saved;
      }
    }
    this.#setReading(true);
  }

  /**
   * Offers buffered input to onInput again now (e.g. when the serial port
   * says its FIFO drained).
   */
  resume(): void {
    this.#deliver();
  }

  /** Puts the terminal and stdin flags back; safe to call any number of times. */
  restore(): void {
    if (this.#saved !== null) {
      libc.tcsetattr(this.#fd, TERMIOS.TCSANOW, this.#saved);
      this.#saved = null;
    }
    if (this.#savedFlags >= 0) {
      libc.fcntl(this.#fd, F_SETFL, BigInt(this.#savedFlags));
      this.#savedFlags = -1;
    }
  }

  /** Stops reading, removes the hooks and restores the terminal. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#setReading(false);
    this.#timer?.del();
    this.restore();
    globalThis.removeEventListener("unload", this.#restoreBound);
    globalThis.removeEventListener("error", this.#restoreBound);
    globalThis.removeEventListener("unhandledrejection", this.#restoreBound);
    this.#removeRestoreHook?.();
    this.#removeRestoreHook = null;
    if (this.#ownsReadFd) closeFd(this.#readFd);
    this.#readFd = -1;
  }

  #openInput(): void {
    try {
      this.#readFd = openFile(`/proc/self/fd/${this.#fd}`, O_RDONLY | O_NONBLOCK | O_NOCTTY);
      this.#ownsReadFd = true;
    } catch {
      const flags = check("fcntl F_GETFL", libc.fcntl(this.#fd, F_GETFL, 0n));
      if (!(flags & O_NONBLOCK)) {
        check("fcntl F_SETFL", libc.fcntl(this.#fd, F_SETFL, BigInt(flags | O_NONBLOCK)));
        this.#savedFlags = flags;
      }
      this.#readFd = this.#fd;
      this.#ownsReadFd = false;
    }
  }

  #setReading(on: boolean): void {
    if (on === this.#reading || this.#readFd < 0) return;
    if (on && (this.#eof || this.#closed)) return;
    this.#reading = on;
    this.#opts.loop.setFdHandler(this.#readFd, on ? this.#readHandler : null);
  }

  #onReadable(): void {
    for (;;) {
      if (this.#start === this.#end) this.#start = this.#end = 0;
      else if (this.#end === PENDING_SIZE && this.#start > 0) {
        this.#pend.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      if (this.#end === PENDING_SIZE) {
        this.#setReading(false); // full: wait for the guest
        break;
      }
      const chunk = this.#pend.subarray(this.#end);
      const n = readInto(this.#readFd, chunk);
      if (n === -EINTR) continue;
      if (n === -EAGAIN) break;
      if (n <= 0) { // EOF, or an error such as EIO after a hangup
        this.#eof = true;
        this.#setReading(false);
        this.#deliver();
        this.#opts.onEof?.();
        return;
      }
      if (this.#filter(this.#end, this.#end + n)) return; // quit requested
      break; // one read per wakeup: the loop is level-triggered
    }
    this.#deliver();
  }

  /**
   * Runs the escape state machine over pend[from, to), compacting the
   * guest-bound bytes in place.
   *
   * @returns true when the user asked to quit
   */
  #filter(from: number, to: number): boolean {
    const pend = this.#pend;
    const esc = this.#escape;
    let w = from;
    for (let r = from; r < to; r++) {
      const b = pend[r];
      if (this.#escPending) {
        this.#escPending = false;
        if (b === esc) pend[w++] = b;
        else if (b === 0x78 || b === 0x58) { // x X
          this.#end = w;
          this.#opts.onQuit();
          return true;
        } else if (b === 0x68 || b === 0x48 || b === 0x3f) this.#say(HELP); // h H ?
        else this.#opts.onEscape?.(b);
      } else if (esc !== null && b === esc) {
        this.#escPending = true;
      } else {
        pend[w++] = b;
      }
    }
    this.#end = w;
    return false;
  }

  #deliver(): void {
    while (this.#start < this.#end) {
      const taken = this.#opts.onInput(this.#pend.subarray(this.#start, this.#end));
      const n = taken === undefined ? this.#end - this.#start : Math.max(0, Math.floor(taken));
      if (n === 0) break;
      this.#start = Math.min(this.#end, this.#start + n);
    }
    if (this.#start < this.#end) {
      if (this.#closed) return;
      this.#timer ??= this.#opts.loop.timer("monotonic", () => this.#deliver());
      this.#timer.mod(this.#opts.loop.now("monotonic") + (this.#opts.retryMs ?? 10) * 1e6);
    } else {
      this.#timer?.del();
    }
    // Read on while there is room (#onReadable compacts the buffer).
    if (this.#start > 0 || this.#end < PENDING_SIZE) this.#setReading(true);
  }

  #say(text: string): void {
    if (this.#opts.output) this.#opts.output(text);
    else writeAll(2, new TextEncoder().encode(text));
  }
}
