/**
 * The VNC server on the main loop: listening sockets (RFB, optionally
 * WebSocket), one {@link RfbSession} per connection, and the byte moving
 * between sockets and the encoder. Sockets are libc fds on the loop's
 * `setFdHandler`; nothing here blocks.
 *
 * Slow clients (QEMU's vnc throttling in shape): each connection has a
 * bounded output queue. While a client's queue is above the bound, its
 * update requests are held back, so the encoder coalesces its changes into
 * one later update instead of queueing more (logged once per episode). A
 * client whose queue makes no progress for `stuckMs` is dropped, with a log
 * line. Other clients and the loop never wait for it.
 *
 * @module
 */
import type { EventLoop, Timer } from "../../mainloop/types.ts";
import { closeFd } from "../../sys/fd.ts";
import {
  acceptSocket,
  listenSocket,
  localPort,
  recvSome,
  sendSome,
  setNoDelay,
  shutdownSocket,
} from "../../sys/socket.ts";
import { RfbSession } from "./rfb_session.ts";
import { FrameDecoder, frameHeader, parseHandshake } from "./websocket.ts";
import {
  type FramebufferSource,
  InlineEncoder,
  type VncEncoder,
  WorkerEncoder,
} from "./encoder.ts";
import type { Rect } from "./encodings.ts";

const EAGAIN = 11;
/** Bytes sent per write callback before the loop gets its turn again. */
const SEND_SLICE = 256 * 1024;

/** Where key and pointer events go (the machine's keyboard and mouse). */
export interface VncInput {
  /** A KeyEvent: X keysym, pressed or released. */
  key(down: boolean, keysym: number): void;
  /** A PointerEvent: button mask and position. */
  pointer?(buttons: number, x: number, y: number): void;
}

/** Server options. */
export interface VncServerOptions {
  /** RFB listen address. */
  listen: { host: string; port: number };
  /** WebSocket listen address (noVNC). */
  websocket?: { host: string; port: number };
  /** VNC password; absent = no authentication. */
  password?: Uint8Array;
  /** Desktop name (default `denovmm`). */
  name?: string;
  /** The framebuffer. */
  framebuffer: FramebufferSource;
  /** Encode in the `vnc-worker` thread (default) or inline on the loop. */
  encoder?: "worker" | "inline";
  /** Keyboard and pointer sink. */
  input?: VncInput;
  /** Output queue bound per client in bytes (default 8 MiB). */
  maxQueueBytes?: number;
  /** Drop a client whose queue makes no progress this long (default 30 s). */
  stuckMs?: number;
  /** Change-detection period while a client waits (default 30 ms). */
  refreshMs?: number;
  /** Drop a connection that has not finished the handshake this long (default 30 s). */
  handshakeMs?: number;
  /** Most connections at once; more are refused (default 64). */
  maxClients?: number;
  /** Log sink (default console.error). */
  log?: (line: string) => void;
}

interface Conn {
  id: number;
  fd: number;
  ws: "handshake" | "open" | null;
  wsBuf: Uint8Array;
  frames: FrameDecoder | null;
  session: RfbSession;
  out: Uint8Array[];
  outOff: number;
  queued: number;
  held: { incremental: boolean; r: Rect } | null;
  inFlight: boolean;
  behind: boolean;
  lastProgress: number;
  openedAt: number;
  writeArmed: boolean;
  closed: boolean;
  onRead: () => void;
  onWrite: () => void;
}

/**
 * A running VNC server.
 *
 * @example
 * ```ts ignore
 * const vnc = await VncServer.start(loop, { listen: { host: "127.0.0.1", port: 5900 }, framebuffer });
 * // ...
 * await vnc.close();
 * ```
 */
export class VncServer {
  #loop: EventLoop;
  #o: VncServerOptions;
  #listenFd = -1;
  #wsFd = -1;
  #enc!: VncEncoder;
  #conns = new Map<number, Conn>();
  #nextId = 1;
  #recvBuf = new Uint8Array(64 * 1024);
  #watchdog: Timer;
  #log: (line: string) => void;
  #maxQueue: number;
  #stuckMs: number;
  #geometry: Int32Array;
  #busyMs = 0;

  private constructor(loop: EventLoop, o: VncServerOptions) {
    this.#loop = loop;
    this.#o = o;
    this.#log = o.log ?? ((l) => console.error(l));
    this.#maxQueue = o.maxQueueBytes ?? 8 << 20;
    this.#stuckMs = o.stuckMs ?? 30_000;
    this.#geometry = new Int32Array(o.framebuffer.geometry);
    this.#watchdog = loop.timer("host", () => this.#checkStuck());
  }

  /**
   * Listens and starts the encoder. Loop thread only.
   *
   * @param loop the main loop
   * @param options addresses, framebuffer, password, input
   * @returns the server
   * @throws ErrnoError when an address cannot be bound
   */
  static async start(loop: EventLoop, options: VncServerOptions): Promise<VncServer> {
    const s = new VncServer(loop, options);
    const inline = options.encoder === "inline";
    const onUpdate = (id: number, bytes: Uint8Array<ArrayBuffer>) => {
      const t = performance.now();
      s.#onUpdate(id, bytes);
      // Inline, this runs inside the encoder's own (timed) work.
      if (!inline) s.#busyMs += performance.now() - t;
    };
    s.#enc = inline
      ? new InlineEncoder(loop, options.framebuffer, { onUpdate, refreshMs: options.refreshMs })
      : await WorkerEncoder.start(options.framebuffer, {
        onUpdate,
        refreshMs: options.refreshMs,
        log: s.#log,
      });
    try {
      s.#listenFd = listenSocket(options.listen);
      loop.setFdHandler(s.#listenFd, { read: () => s.#accept(s.#listenFd, false) });
      if (options.websocket) {
        s.#wsFd = listenSocket(options.websocket);
        loop.setFdHandler(s.#wsFd, { read: () => s.#accept(s.#wsFd, true) });
      }
    } catch (e) {
      await s.close();
      throw e;
    }
    return s;
  }

  /** The RFB port (useful after listening on port 0). */
  get port(): number {
    return localPort(this.#listenFd);
  }

  /** The WebSocket port, or -1. */
  get websocketPort(): number {
    return this.#wsFd < 0 ? -1 : localPort(this.#wsFd);
  }

  /**
   * Serves other framebuffer memory (a machine rebuilt on reset), or (null)
   * stops reading the current one; resolves once the old memory is no
   * longer read, so it may be unmapped. Loop thread only.
   *
   * @param fb the new framebuffer, or null
   * @returns resolves when the encoder has switched
   */
  setFramebuffer(fb: FramebufferSource | null): Promise<void> {
    if (fb) this.#geometry = new Int32Array(fb.geometry);
    return this.#enc.setFramebuffer(fb);
  }

  /** Main-thread milliseconds spent in VNC work (socket I/O, protocol, inline encoding) so far. */
  get busyMs(): number {
    return this.#busyMs + (this.#enc?.busyMs ?? 0);
  }

  /** Connected clients. */
  get clients(): number {
    return this.#conns.size;
  }

  #accept(listenFd: number, ws: boolean): void {
    for (let i = 0; i < 16; i++) {
      let fd: number;
      try {
        fd = acceptSocket(listenFd);
      } catch (e) {
        this.#log(`vnc: accept failed: ${(e as Error).message}`);
        return;
      }
      if (fd < 0) return;
      if (this.#conns.size >= (this.#o.maxClients ?? 64)) {
        this.#log(`vnc: connection refused: ${this.#conns.size} clients already`);
        shutdownSocket(fd);
        closeFd(fd);
        continue;
      }
      setNoDelay(fd);
      this.#open(fd, ws);
    }
  }

  #open(fd: number, ws: boolean): void {
    const id = this.#nextId++;
    const conn: Conn = {
      id,
      fd,
      ws: ws ? "handshake" : null,
      wsBuf: new Uint8Array(0),
      frames: null,
      out: [],
      outOff: 0,
      queued: 0,
      held: null,
      inFlight: false,
      behind: false,
      lastProgress: Date.now(),
      openedAt: Date.now(),
      writeArmed: false,
      closed: false,
      session: null as unknown as RfbSession,
      onRead: () => this.#timed(this.#read, conn),
      onWrite: () => this.#timed(this.#flush, conn),
    };
    const o = this.#o;
    conn.session = new RfbSession({
      password: o.password,
      name: o.name ?? "denovmm",
      size: () => ({
        width: Atomics.load(this.#geometry, 1),
        height: Atomics.load(this.#geometry, 2),
      }),
    }, {
      send: (b) => this.#queue(conn, b),
      ready: () => this.#enc.addClient(id),
      pixelFormat: (pf) => this.#enc.setPixelFormat(id, pf),
      encodings: (list) => this.#enc.setEncodings(id, list),
      updateRequest: (incremental, r) => this.#request(conn, incremental, r),
      key: (down, keysym) => o.input?.key(down, keysym),
      pointer: (buttons, x, y) => o.input?.pointer?.(buttons, x, y),
      end: (reason) => this.#close(conn, reason),
    });
    this.#conns.set(id, conn);
    this.#loop.setFdHandler(fd, { read: conn.onRead });
    if (!ws) conn.session.start();
    if (!this.#watchdog.pending) this.#watchdog.mod(this.#loop.now("host") + this.#watchNs());
  }

  #timed(f: (conn: Conn) => void, conn: Conn): void {
    const t = performance.now();
    f.call(this, conn);
    this.#busyMs += performance.now() - t;
  }

  #read(conn: Conn): void {
    for (let i = 0; i < 16 && !conn.closed; i++) {
      const n = recvSome(conn.fd, this.#recvBuf);
      if (n === -EAGAIN) return;
      if (n <= 0) {
        this.#close(conn, n === 0 ? "client disconnected" : `receive failed (errno ${-n})`);
        return;
      }
      const data = this.#recvBuf.subarray(0, n);
      if (conn.ws === null) conn.session.feed(data);
      else this.#wsInput(conn, data);
    }
  }

  #wsInput(conn: Conn, data: Uint8Array): void {
    if (conn.ws === "open") {
      conn.frames!.feed(data);
      return;
    }
    const all = new Uint8Array(conn.wsBuf.length + data.length);
    all.set(conn.wsBuf);
    all.set(data, conn.wsBuf.length);
    const h = parseHandshake(all);
    if (h.state === "incomplete") {
      conn.wsBuf = all;
      return;
    }
    this.#queueRaw(conn, h.reply);
    if (h.state === "error") {
      this.#close(conn, `WebSocket handshake: ${h.reason}`);
      return;
    }
    conn.ws = "open";
    conn.wsBuf = new Uint8Array(0);
    conn.frames = new FrameDecoder({
      data: (b) => conn.session.feed(b),
      reply: (b) => this.#queueRaw(conn, b),
      end: (reason) => this.#close(conn, reason),
    });
    conn.session.start();
    if (h.rest.length) conn.frames.feed(h.rest);
  }

  #request(conn: Conn, incremental: boolean, r: Rect): void {
    // One request in the encoder per client; later ones merge into a held one.
    const prev = conn.held;
    conn.held = { incremental: incremental && (prev?.incremental ?? true), r };
    this.#release(conn);
  }

  #release(conn: Conn): void {
    if (!conn.held || conn.inFlight || conn.closed) return;
    if (conn.queued >= (conn.behind ? this.#maxQueue / 2 : this.#maxQueue)) {
      if (!conn.behind) {
        // The encoder keeps accumulating this client's changes meanwhile.
        conn.behind = true;
        this.#log(
          `vnc: client ${conn.id} falls behind (${conn.queued} bytes queued): coalescing its updates`,
        );
      }
      return;
    }
    const h = conn.held;
    conn.held = null;
    conn.behind = false;
    conn.inFlight = true;
    this.#enc.request(conn.id, h.incremental, h.r);
  }

  #onUpdate(id: number, bytes: Uint8Array<ArrayBuffer>): void {
    const conn = this.#conns.get(id);
    if (!conn || conn.closed) return;
    conn.inFlight = false;
    this.#queue(conn, bytes);
    this.#release(conn);
  }

  #queue(conn: Conn, bytes: Uint8Array): void {
    if (conn.ws === "open") this.#queueRaw(conn, frameHeader(bytes.length));
    this.#queueRaw(conn, bytes);
  }

  #queueRaw(conn: Conn, bytes: Uint8Array): void {
    if (conn.closed) return;
    if (conn.out.length === 0) conn.lastProgress = Date.now();
    conn.out.push(bytes);
    conn.queued += bytes.length;
    this.#flush(conn);
  }

  #flush(conn: Conn): void {
    // At most SEND_SLICE bytes per callback: a loopback send runs the
    // receiver's TCP path in this thread too, so a whole frame in one call
    // would hold the loop for milliseconds. The rest goes on POLLOUT.
    let budget = SEND_SLICE;
    while (conn.out.length > 0 && !conn.closed && budget > 0) {
      const head = conn.out[0];
      const end = Math.min(head.length, conn.outOff + budget);
      const chunk = head.subarray(conn.outOff, end) as Uint8Array<ArrayBuffer>;
      const n = sendSome(conn.fd, chunk);
      if (n < 0) {
        this.#close(conn, `send failed (errno ${-n})`);
        return;
      }
      if (n > 0) {
        conn.lastProgress = Date.now();
        conn.queued -= n;
        budget -= n;
      }
      conn.outOff += n;
      if (conn.outOff < head.length) {
        if (n < chunk.length) break; // the socket is full
        continue;
      }
      conn.out.shift();
      conn.outOff = 0;
    }
    const pending = conn.out.length > 0;
    if (pending !== conn.writeArmed && !conn.closed) {
      conn.writeArmed = pending;
      this.#loop.setFdHandler(conn.fd, {
        read: conn.onRead,
        write: pending ? conn.onWrite : null,
      });
    }
    this.#release(conn);
  }

  #watchNs(): number {
    return Math.min(1e9, (this.#stuckMs * 1e6) / 4, ((this.#o.handshakeMs ?? 30_000) * 1e6) / 4);
  }

  #checkStuck(): void {
    const now = Date.now();
    const handshakeMs = this.#o.handshakeMs ?? 30_000;
    for (const conn of [...this.#conns.values()]) {
      if (!conn.session.ready && now - conn.openedAt >= handshakeMs) {
        this.#close(conn, `no handshake in ${(handshakeMs / 1000).toFixed(1)} s; dropped`);
        continue;
      }
      if (conn.queued > 0 && now - conn.lastProgress >= this.#stuckMs) {
        this.#close(
          conn,
          `not reading for ${
            ((now - conn.lastProgress) / 1000).toFixed(1)
          } s with ${conn.queued} bytes queued; dropped`,
        );
      }
    }
    if (this.#conns.size > 0) {
      this.#watchdog.mod(this.#loop.now("host") + this.#watchNs());
    }
  }

  #close(conn: Conn, reason: string): void {
    if (conn.closed) return;
    conn.closed = true;
    this.#log(`vnc: client ${conn.id}: ${reason}`);
    this.#loop.setFdHandler(conn.fd, null);
    shutdownSocket(conn.fd);
    closeFd(conn.fd);
    conn.out = [];
    conn.queued = 0;
    this.#conns.delete(conn.id);
    this.#enc.removeClient(conn.id);
  }

  /** Closes every connection and listener and stops the encoder. Loop thread only. */
  async close(): Promise<void> {
    for (const c of [...this.#conns.values()]) this.#close(c, "server closing");
    for (const fd of [this.#listenFd, this.#wsFd]) {
      if (fd >= 0) {
        this.#loop.setFdHandler(fd, null);
        closeFd(fd);
      }
    }
    this.#listenFd = this.#wsFd = -1;
    this.#watchdog.del();
    await this.#enc?.close();
  }
}
