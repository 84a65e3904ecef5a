/**
 * One RFB 3.8 session from the server's side, as a byte-in, byte-out state
 * machine (RFC 6143): version (3.3, 3.7 and 3.8 clients), security None or
 * VNC authentication, ClientInit/ServerInit, then the client messages.
 * No sockets here: the server feeds received bytes and sends what this
 * emits; framebuffer updates come from the encoder, not from this object.
 *
 * Client input is untrusted: a malformed or unsupported message ends the
 * session with a reason (the server logs it and closes the connection);
 * nothing here throws for client mistakes.
 *
 * @module
 */
import { vncAuthResponse } from "./des.ts";
import {
  NATIVE_FORMAT,
  type PixelFormat,
  readPixelFormat,
  writePixelFormat,
} from "./pixel_format.ts";
import type { Rect } from "./encodings.ts";

/** Security types. */
export const SECURITY_NONE = 1;
/** VNC authentication (DES challenge). */
export const SECURITY_VNC_AUTH = 2;

/** Longest ClientCutText accepted before the session is ended. */
export const MAX_CUT_TEXT = 1 << 20;
/** Most encodings in one SetEncodings. */
export const MAX_ENCODINGS = 1024;

/** What a session reports to the server. */
export interface SessionEvents {
  /** Bytes for the client (handshake and small replies). */
  send(bytes: Uint8Array): void;
  /** The handshake completed; updates may flow. */
  ready(): void;
  /** SetPixelFormat. */
  pixelFormat(pf: PixelFormat): void;
  /** SetEncodings. */
  encodings(list: number[]): void;
  /** FramebufferUpdateRequest. */
  updateRequest(incremental: boolean, r: Rect): void;
  /** KeyEvent. */
  key(down: boolean, keysym: number): void;
  /** PointerEvent. */
  pointer(buttons: number, x: number, y: number): void;
  /** The session is over (the reason is for the log). */
  end(reason: string): void;
}

/** What the server tells every session. */
export interface SessionOptions {
  /** The VNC password (first 8 bytes count); absent = security None. */
  password?: Uint8Array;
  /** Desktop name for ServerInit. */
  name: string;
  /** Current framebuffer size. */
  size(): { width: number; height: number };
}

type State = "version" | "security" | "auth" | "init" | "normal" | "closed";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The session state machine.
 *
 * @example
 * ```ts ignore
 * const s = new RfbSession(options, events);
 * s.start();            // sends "RFB 003.008\n"
 * s.feed(bytesFromSocket);
 * ```
 */
export class RfbSession {
  #o: SessionOptions;
  #ev: SessionEvents;
  #state: State = "version";
  #minor = 8;
  #buf = new Uint8Array(4096);
  #len = 0;
  #challenge = new Uint8Array(16);

  /**
   * @param options password and desktop
   * @param events where results go
   */
  constructor(options: SessionOptions, events: SessionEvents) {
    this.#o = options;
    this.#ev = events;
  }

  /** Whether the handshake is done. */
  get ready(): boolean {
    return this.#state === "normal";
  }

  /** Sends the server's ProtocolVersion. */
  start(): void {
    this.#ev.send(encoder.encode("RFB 003.008\n"));
  }

  /**
   * Takes bytes received from the client and acts on every complete message.
   *
   * @param data received bytes
   */
  feed(data: Uint8Array): void {
    if (this.#state === "closed") return;
    if (this.#len + data.length > this.#buf.length) {
      const b = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + data.length));
      b.set(this.#buf.subarray(0, this.#len));
      this.#buf = b;
    }
    this.#buf.set(data, this.#len);
    this.#len += data.length;
    let off = 0;
    for (;;) {
      const used = this.#step(this.#buf.subarray(off, this.#len));
      if (used <= 0 || (this.#state as State) === "closed") break;
      off += used;
    }
    this.#buf.copyWithin(0, off, this.#len);
    this.#len -= off;
  }

  #end(reason: string): number {
    this.#state = "closed";
    this.#ev.end(reason);
    return -1;
  }

  /** Consumes one message from b; returns bytes used, 0 when incomplete. */
  #step(b: Uint8Array): number {
    switch (this.#state) {
      case "version":
        return this.#version(b);
      case "security":
        return this.#security(b);
      case "auth":
        return this.#auth(b);
      case "init":
        return this.#init(b);
      case "normal":
        return this.#message(b);
      default:
        return -1;
    }
  }

  #version(b: Uint8Array): number {
    if (b.length < 12) return 0;
    const m = /^RFB (\d{3})\.(\d{3})\n$/.exec(decoder.decode(b.subarray(0, 12)));
    if (!m || Number(m[1]) !== 3) return this.#end("not an RFB 3.x client");
    const minor = Number(m[2]);
    // 3.3, 3.7, 3.8; anything newer speaks 3.8, odd ones (3.5) are 3.3 (RFC 6143 §7.1.1).
    this.#minor = minor >= 8 ? 8 : minor === 7 ? 7 : 3;
    const type = this.#o.password ? SECURITY_VNC_AUTH : SECURITY_NONE;
    if (this.#minor === 3) {
      this.#ev.send(u32(type));
      this.#afterSecurityChoice(type);
    } else {
      this.#ev.send(new Uint8Array([1, type]));
      this.#state = "security";
    }
    return 12;
  }

  #security(b: Uint8Array): number {
    if (b.length < 1) return 0;
    const want = this.#o.password ? SECURITY_VNC_AUTH : SECURITY_NONE;
    if (b[0] !== want) {
      if (this.#minor === 8) this.#ev.send(failure("Security type not offered"));
      return this.#end(`chose security type ${b[0]}, not the one offered`);
    }
    this.#afterSecurityChoice(want);
    return 1;
  }

  #afterSecurityChoice(type: number): void {
    if (type === SECURITY_VNC_AUTH) {
      crypto.getRandomValues(this.#challenge);
      this.#ev.send(this.#challenge.slice());
      this.#state = "auth";
      return;
    }
    // None: 3.8 sends a SecurityResult, 3.3 and 3.7 go straight to ClientInit.
    if (this.#minor === 8) this.#ev.send(u32(0));
    this.#state = "init";
  }

  #auth(b: Uint8Array): number {
    if (b.length < 16) return 0;
    const want = vncAuthResponse(this.#o.password!, this.#challenge);
    let diff = 0;
    for (let i = 0; i < 16; i++) diff |= want[i] ^ b[i];
    if (diff !== 0) {
      this.#ev.send(this.#minor === 8 ? failure("Authentication failed") : u32(1));
      return this.#end("authentication failed");
    }
    this.#ev.send(u32(0));
    this.#state = "init";
    return 16;
  }

  #init(b: Uint8Array): number {
    if (b.length < 1) return 0;
    const { width, height } = this.#o.size();
    const name = encoder.encode(this.#o.name);
    const msg = new Uint8Array(24 + name.length);
    const v = new DataView(msg.buffer);
    v.setUint16(0, width);
    v.setUint16(2, height);
    writePixelFormat(NATIVE_FORMAT, msg, 4);
    v.setUint32(20, name.length);
    msg.set(name, 24);
    this.#ev.send(msg);
    this.#state = "normal";
    this.#ev.ready();
    return 1;
  }

  #message(b: Uint8Array): number {
    if (b.length < 1) return 0;
    const v = new DataView(b.buffer, b.byteOffset, b.length);
    switch (b[0]) {
      case 0: { // SetPixelFormat
        if (b.length < 20) return 0;
        let pf: PixelFormat;
        try {
          pf = readPixelFormat(b.subarray(4, 20));
        } catch (e) {
          return this.#end(`SetPixelFormat: ${(e as Error).message}`);
        }
        this.#ev.pixelFormat(pf);
        return 20;
      }
      case 2: { // SetEncodings
        if (b.length < 4) return 0;
        const n = v.getUint16(2);
        if (n > MAX_ENCODINGS) return this.#end(`SetEncodings with ${n} encodings`);
        if (b.length < 4 + 4 * n) return 0;
        const list: number[] = [];
        for (let i = 0; i < n; i++) list.push(v.getInt32(4 + 4 * i));
        this.#ev.encodings(list);
        return 4 + 4 * n;
      }
      case 3: { // FramebufferUpdateRequest
        if (b.length < 10) return 0;
        const r = { x: v.getUint16(2), y: v.getUint16(4), w: v.getUint16(6), h: v.getUint16(8) };
        this.#ev.updateRequest(b[1] !== 0, r);
        return 10;
      }
      case 4: // KeyEvent
        if (b.length < 8) return 0;
        this.#ev.key(b[1] !== 0, v.getUint32(4));
        return 8;
      case 5: // PointerEvent
        if (b.length < 6) return 0;
        this.#ev.pointer(b[1], v.getUint16(2), v.getUint16(4));
        return 6;
      case 6: { // ClientCutText: read and ignore
        if (b.length < 8) return 0;
        const len = v.getUint32(4);
        if (len > MAX_CUT_TEXT) return this.#end(`ClientCutText of ${len} bytes`);
        if (b.length < 8 + len) return 0;
        return 8 + len;
      }
      default:
        return this.#end(`unknown client message type ${b[0]}`);
    }
  }
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}

function failure(reason: string): Uint8Array {
  const r = encoder.encode(reason);
  const b = new Uint8Array(8 + r.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, 1);
  v.setUint32(4, r.length);
  b.set(r, 8);
  return b;
}
