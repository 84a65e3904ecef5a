/**
 * The QMP server (QEMU Machine Protocol, docs/interop/qmp-spec.rst): a Unix
 * socket on the main loop, all I/O through libc (`--allow-ffi` is enough).
 *
 * Per connection: the greeting, then `qmp_capabilities`, then commands; each
 * reply carries the request's `id`; events go to every negotiated client.
 * A connection is served in arrival order (an asynchronous command such as
 * `stop` finishes before the next one starts). What a client does never
 * disturbs the VM: malformed JSON and bad commands get QMP errors; a message
 * over 1 MiB or nested over 1024 levels, a client that stops reading while
 * over 1 MiB of output is queued, and a client that vanishes are dropped.
 *
 * @module
 */
import type { EventLoop } from "../mainloop/types.ts";
import {
  acceptConnection,
  removeSocketFile,
  socketRecv,
  socketSend,
  unixListen,
} from "../sys/unix_socket.ts";
import { closeFd } from "../sys/fd.ts";
import { JsonStreamer } from "./json_stream.ts";
import { prepareCommand, QmpError, type QmpVersion } from "./commands.ts";
import type { QmpTarget } from "./target.ts";

/** Options for {@link QmpServer.listen}. */
export interface QmpServerOptions {
  /** The version in the greeting (QEMU's `qemu` triple; default denovmm's). */
  version?: { major: number; minor: number; micro: number };
  /** The `package` string in the greeting. */
  package?: string;
  /** Most clients at once (default 4; more are accepted and closed). */
  maxClients?: number;
  /** Largest message (default 1 MiB). */
  maxMessageBytes?: number;
  /** Most output queued for a client that does not read (default 1 MiB). */
  maxQueuedBytes?: number;
}

const encoder = new TextEncoder();

class Client {
  readonly fd: number;
  readonly stream: JsonStreamer;
  negotiated = false;
  out: Uint8Array<ArrayBuffer>[] = [];
  outBytes = 0;
  /** No more reading: end of stream, unframeable input, or closing. */
  eof = false;
  closing = false;
  closed = false;
  chain: Promise<void> = Promise.resolve();

  constructor(fd: number, maxMessageBytes: number) {
    this.fd = fd;
    this.stream = new JsonStreamer({ maxBytes: maxMessageBytes });
  }
}

/** QEMU's event timestamp: wall-clock seconds and microseconds. */
export function qmpTimestamp(): { seconds: number; microseconds: number } {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return { seconds: Math.floor(us / 1e6), microseconds: us % 1e6 };
}

/**
 * A listening QMP socket.
 *
 * @example
 * ```ts ignore
 * const qmp = QmpServer.listen(loop, "/run/vm/qmp.sock", target);
 * qmp.emit("STOP");
 * qmp.close();
 * ```
 */
export class QmpServer {
  readonly #loop: EventLoop;
  readonly #path: string;
  readonly #target: QmpTarget;
  readonly #listenFd: number;
  readonly #clients = new Set<Client>();
  readonly #greeting: Uint8Array<ArrayBuffer>;
  /** The greeting's version, which query-version repeats. */
  readonly #version: QmpVersion;
  readonly #maxClients: number;
  readonly #maxMessage: number;
  readonly #maxQueued: number;
  readonly #buf = new Uint8Array(65536);
  #closed = false;

  private constructor(
    loop: EventLoop,
    path: string,
    target: QmpTarget,
    fd: number,
    o: QmpServerOptions,
  ) {
    this.#loop = loop;
    this.#path = path;
    this.#target = target;
    this.#listenFd = fd;
    this.#maxClients = o.maxClients ?? 4;
    this.#maxMessage = o.maxMessageBytes ?? 1 << 20;
    this.#maxQueued = o.maxQueuedBytes ?? 1 << 20;
    this.#version = {
      qemu: o.version ?? { major: 0, minor: 1, micro: 0 },
      package: o.package ?? "denovmm",
    };
    this.#greeting = line({ QMP: { version: this.#version, capabilities: [] } });
    loop.setFdHandler(fd, { read: () => this.#accept() });
  }

  /**
   * Creates the socket (mode 0600; a stale socket is replaced, anything else
   * refused) and serves it on `loop`. Call from the loop's thread.
   *
   * @param loop the main loop
   * @param path socket path
   * @param target the machine
   * @param options limits and greeting
   * @returns the server
   */
  static listen(
    loop: EventLoop,
    path: string,
    target: QmpTarget,
    options: QmpServerOptions = {},
  ): QmpServer {
    return new QmpServer(loop, path, target, unixListen(path), options);
  }

  /** Connected clients. */
  get clients(): number {
    return this.#clients.size;
  }

  /**
   * Sends an event to every client past capabilities negotiation.
   *
   * @param event QEMU's event name (`STOP`, `SHUTDOWN`, ...)
   * @param data its `data` member, if any
   */
  emit(event: string, data?: Record<string, unknown>): void {
    const msg = data === undefined
      ? { timestamp: qmpTimestamp(), event }
      : { timestamp: qmpTimestamp(), event, data };
    const bytes = line(msg);
    for (const c of this.#clients) if (c.negotiated) this.#send(c, bytes);
  }

  /** Closes every connection and the socket, and removes the socket file. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of [...this.#clients]) this.#drop(c);
    this.#loop.setFdHandler(this.#listenFd, null);
    closeFd(this.#listenFd);
    try {
      removeSocketFile(this.#path);
    } catch {
      // Someone else removed or replaced it; nothing of ours is left there.
    }
  }

  #accept(): void {
    for (;;) {
      const fd = acceptConnection(this.#listenFd);
      if (fd < 0) return;
      if (this.#clients.size >= this.#maxClients) {
        closeFd(fd);
        continue;
      }
      const c = new Client(fd, this.#maxMessage);
      this.#clients.add(c);
      this.#loop.setFdHandler(fd, { read: () => this.#read(c) });
      this.#send(c, this.#greeting);
    }
  }

  #read(c: Client): void {
    for (;;) {
      let n: number;
      try {
        n = socketRecv(c.fd, this.#buf);
      } catch {
        n = 0;
      }
      if (n === 0) {
        // The client may have sent its last commands and shut down its
        // writing side (socat does): answer them, then close.
        c.eof = true;
        this.#loop.setFdHandler(c.fd, c.out.length ? { write: () => this.#flush(c) } : null);
        c.chain = c.chain.then(() => this.#finish(c));
        return;
      }
      if (n < 0) return;
      for (const item of c.stream.push(this.#buf.subarray(0, n))) {
        if (item.kind === "text") {
          const text = item.text;
          c.chain = c.chain.then(() => this.#handle(c, text));
        } else {
          const why = item.kind === "tooLarge"
            ? `JSON parse error, message over ${this.#maxMessage} bytes`
            : "JSON parse error, nesting too deep";
          c.chain = c.chain.then(() => this.#fatal(c, why));
        }
      }
      if (c.stream.failed) {
        // Nothing more from this client can be framed; stop reading it.
        c.eof = true;
        this.#loop.setFdHandler(c.fd, c.out.length ? { write: () => this.#flush(c) } : null);
        return;
      }
    }
  }

  #fatal(c: Client, desc: string): void {
    this.#reply(c, undefined, new QmpError("GenericError", desc));
    this.#finish(c);
  }

  /** Closes once the queued output has gone. */
  #finish(c: Client): void {
    c.closing = true;
    if (c.out.length === 0) this.#drop(c);
  }

  async #handle(c: Client, text: string): Promise<void> {
    if (c.closed || c.closing) return;
    let req: unknown;
    try {
      req = JSON.parse(text);
    } catch (e) {
      const why = (e as Error).message.split("\n")[0];
      return this.#reply(c, undefined, new QmpError("GenericError", `JSON parse error, ${why}`));
    }
    if (req === null || typeof req !== "object" || Array.isArray(req)) {
      return this.#reply(
        c,
        undefined,
        new QmpError("GenericError", "QMP input must be a JSON object"),
      );
    }
    const r = req as Record<string, unknown>;
    const id = r.id;
    try {
      const cmd = this.#validate(c, r);
      if (cmd === undefined) return this.#reply(c, id, undefined, {});
      const before = this.#target.status();
      if (cmd.event) this.emit(cmd.event[0], cmd.event[1]);
      const result = await cmd.run();
      this.#stateEvents(r.execute as string, before);
      this.#reply(c, id, undefined, result === undefined ? {} : result);
      if (r.execute === "quit") this.#target.quit();
    } catch (e) {
      if (!(e instanceof QmpError)) {
        const msg = e instanceof Error ? e.message : String(e);
        return this.#reply(c, id, new QmpError("GenericError", msg));
      }
      this.#reply(c, id, e);
    }
  }

  /** Checks the envelope; undefined means qmp_capabilities succeeded. */
  #validate(c: Client, r: Record<string, unknown>) {
    for (const key of Object.keys(r)) {
      if (key !== "execute" && key !== "arguments" && key !== "id" && key !== "exec-oob") {
        throw new QmpError("GenericError", `QMP input member '${key}' is unexpected`);
      }
    }
    if (r["exec-oob"] !== undefined) {
      throw new QmpError("GenericError", "QMP input member 'exec-oob' is unexpected");
    }
    if (r.execute === undefined) {
      throw new QmpError("GenericError", "QMP input lacks member 'execute'");
    }
    if (typeof r.execute !== "string") {
      throw new QmpError("GenericError", "QMP input member 'execute' must be a string");
    }
    const args = r.arguments ?? {};
    if (args === null || typeof args !== "object" || Array.isArray(args)) {
      throw new QmpError("GenericError", "QMP input member 'arguments' must be an object");
    }
    const a = args as Record<string, unknown>;
    if (r.execute === "qmp_capabilities") {
      if (c.negotiated) {
        throw new QmpError(
          "CommandNotFound",
          "Capabilities negotiation is already complete, command ignored",
        );
      }
      for (const key of Object.keys(a)) {
        if (key !== "enable") {
          throw new QmpError("GenericError", `Parameter '${key}' is unexpected`);
        }
      }
      if (a.enable !== undefined) {
        if (!Array.isArray(a.enable)) {
          throw new QmpError(
            "GenericError",
            "Invalid parameter type for 'enable', expected: array",
          );
        }
        if (a.enable.length > 0) {
          throw new QmpError("GenericError", `Capability '${a.enable[0]}' not available`);
        }
      }
      c.negotiated = true;
      return undefined;
    }
    if (!c.negotiated) {
      throw new QmpError(
        "CommandNotFound",
        "Expecting capabilities negotiation with 'qmp_capabilities'",
      );
    }
    return prepareCommand(this.#target, r.execute, a, this.#version);
  }

  #stateEvents(cmd: string, before: string): void {
    const after = this.#target.status();
    if (cmd === "stop" && before === "running" && after !== "running") this.emit("STOP");
    if (cmd === "cont" && before !== "running" && after === "running") this.emit("RESUME");
  }

  #reply(c: Client, id: unknown, error?: QmpError, result?: unknown): void {
    if (c.closed) return;
    const msg: Record<string, unknown> = error
      ? { error: { class: error.errorClass, desc: error.message } }
      : { return: result };
    if (id !== undefined) msg.id = id;
    this.#send(c, line(msg));
  }

  #send(c: Client, bytes: Uint8Array<ArrayBuffer>): void {
    if (c.closed) return;
    if (c.out.length === 0) {
      let n: number;
      try {
        n = socketSend(c.fd, bytes);
      } catch {
        return this.#drop(c);
      }
      if (n === bytes.length) return;
      bytes = bytes.subarray(Math.max(n, 0));
    }
    c.out.push(bytes);
    c.outBytes += bytes.length;
    if (c.outBytes > this.#maxQueued) return this.#drop(c);
    this.#loop.setFdHandler(c.fd, {
      read: c.eof || c.closing ? null : () => this.#read(c),
      write: () => this.#flush(c),
    });
  }

  #flush(c: Client): void {
    while (c.out.length > 0) {
      let n: number;
      try {
        n = socketSend(c.fd, c.out[0]);
      } catch {
        return this.#drop(c);
      }
      if (n < 0) return;
      c.outBytes -= n;
      if (n < c.out[0].length) {
        c.out[0] = c.out[0].subarray(n);
        return;
      }
      c.out.shift();
    }
    if (c.closing) return this.#drop(c);
    this.#loop.setFdHandler(c.fd, c.eof ? null : { read: () => this.#read(c) });
  }

  #drop(c: Client): void {
    if (c.closed) return;
    c.closed = true;
    this.#clients.delete(c);
    this.#loop.setFdHandler(c.fd, null);
    closeFd(c.fd);
  }
}

/**
 * JSON as QEMU writes it: `": "` and `", "` separators, one message per
 * line ending in CRLF (some clients match on the text).
 */
function qemuJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(qemuJson).join(", ")}]`;
  const parts: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    if (x !== undefined) parts.push(`${JSON.stringify(k)}: ${qemuJson(x)}`);
  }
  return `{${parts.join(", ")}}`;
}

function line(msg: unknown): Uint8Array<ArrayBuffer> {
  return encoder.encode(qemuJson(msg) + "\r\n");
}
