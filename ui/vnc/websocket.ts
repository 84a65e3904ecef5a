/**
 * The WebSocket transport for RFB (RFC 6455), as QEMU's `websocket=PORT`:
 * noVNC in a browser connects straight to it. The HTTP upgrade, then binary
 * frames both ways; client frames must be masked. Bad handshakes, unmasked
 * or oversized frames end the connection.
 *
 * @module
 */
import { createHash } from "node:crypto";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Longest handshake request accepted. */
export const MAX_HANDSHAKE = 8192;
/** Largest client frame payload accepted (client RFB messages are small). */
export const MAX_FRAME = 4 << 20;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The outcome of feeding handshake bytes. */
export type HandshakeResult =
  | { state: "incomplete" }
  | { state: "error"; reason: string; reply: Uint8Array }
  | { state: "done"; reply: Uint8Array; rest: Uint8Array };

/**
 * Sec-WebSocket-Accept for a key.
 *
 * @param key the client's Sec-WebSocket-Key
 * @returns the accept value
 * @example
 * ```ts
 * import { acceptKey } from "./websocket.ts";
 * console.log(acceptKey("dGhlIHNhbXBsZSBub25jZQ==")); // s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
 * ```
 */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

/**
 * Parses the upgrade request once it is complete.
 *
 * @param data bytes received so far
 * @returns incomplete, an error with the HTTP reply to send, or the 101 reply and any bytes after the request
 */
export function parseHandshake(data: Uint8Array): HandshakeResult {
  let end = -1;
  for (let i = 3; i < data.length; i++) {
    if (data[i - 3] === 13 && data[i - 2] === 10 && data[i - 1] === 13 && data[i] === 10) {
      end = i + 1;
      break;
    }
  }
  const bad = (reason: string): HandshakeResult => ({
    state: "error",
    reason,
    reply: encoder.encode("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"),
  });
  if (end < 0) {
    return data.length > MAX_HANDSHAKE ? bad("handshake too long") : { state: "incomplete" };
  }
  const lines = decoder.decode(data.subarray(0, end)).split("\r\n");
  if (!/^GET \S+ HTTP\/1\.1$/.test(lines[0])) return bad("not an HTTP/1.1 GET");
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  if (headers.get("upgrade")?.toLowerCase() !== "websocket") return bad("no Upgrade: websocket");
  const key = headers.get("sec-websocket-key");
  if (!key || !/^[A-Za-z0-9+/]{22}==$/.test(key)) return bad("missing or bad Sec-WebSocket-Key");
  const protocols = (headers.get("sec-websocket-protocol") ?? "").split(",").map((s) => s.trim());
  const proto = protocols.includes("binary") ? "Sec-WebSocket-Protocol: binary\r\n" : "";
  const reply = encoder.encode(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n${proto}\r\n`,
  );
  return { state: "done", reply, rest: data.subarray(end) };
}

/**
 * A binary frame header for a payload of n bytes (server frames are unmasked).
 *
 * @param n payload length
 * @param opcode 2 binary (default), 8 close, 10 pong
 * @returns the header bytes
 */
export function frameHeader(n: number, opcode = 2): Uint8Array {
  if (n < 126) return new Uint8Array([0x80 | opcode, n]);
  if (n < 65536) return new Uint8Array([0x80 | opcode, 126, n >> 8, n & 0xff]);
  const h = new Uint8Array(10);
  h[0] = 0x80 | opcode;
  h[1] = 127;
  new DataView(h.buffer).setBigUint64(2, BigInt(n));
  return h;
}

/** What a frame decoder produces from client bytes. */
export interface FrameSink {
  /** Payload bytes of data frames, in order. */
  data(bytes: Uint8Array): void;
  /** Control replies (pong, close) to send. */
  reply(bytes: Uint8Array): void;
  /** The connection must end. */
  end(reason: string): void;
}

/**
 * Decodes client frames incrementally.
 *
 * @example
 * ```ts ignore
 * const d = new FrameDecoder({ data: (b) => session.feed(b), reply: send, end: close });
 * d.feed(bytes);
 * ```
 */
export class FrameDecoder {
  #sink: FrameSink;
  #buf = new Uint8Array(0);
  #closed = false;

  /** @param sink where payloads and replies go */
  constructor(sink: FrameSink) {
    this.#sink = sink;
  }

  /**
   * Takes received bytes.
   *
   * @param data bytes from the socket
   */
  feed(data: Uint8Array): void {
    if (this.#closed) return;
    const b = new Uint8Array(this.#buf.length + data.length);
    b.set(this.#buf);
    b.set(data, this.#buf.length);
    let off = 0;
    while (!this.#closed) {
      const used = this.#frame(b.subarray(off));
      if (used === 0) break;
      off += used;
    }
    this.#buf = b.slice(off);
  }

  #end(reason: string): number {
    this.#closed = true;
    this.#sink.end(reason);
    return 0;
  }

  #frame(b: Uint8Array): number {
    if (b.length < 2) return 0;
    const opcode = b[0] & 0x0f;
    if (!(b[1] & 0x80)) return this.#end("unmasked client frame");
    let len = b[1] & 0x7f, at = 2;
    if (len === 126) {
      if (b.length < 4) return 0;
      len = (b[2] << 8) | b[3];
      at = 4;
    } else if (len === 127) {
      if (b.length < 10) return 0;
      const big = new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0);
      if (big > BigInt(MAX_FRAME)) return this.#end(`frame of ${big} bytes`);
      len = Number(big);
      at = 10;
    }
    if (len > MAX_FRAME) return this.#end(`frame of ${len} bytes`);
    if (b.length < at + 4 + len) return 0;
    const mask = b.subarray(at, at + 4);
    const payload = new Uint8Array(len);
    for (let i = 0; i < len; i++) payload[i] = b[at + 4 + i] ^ mask[i & 3];
    switch (opcode) {
      case 0: // continuation
      case 1: // text (noVNC sends binary; accept either)
      case 2:
        this.#sink.data(payload);
        break;
      case 8:
        this.#sink.reply(frameHeader(0, 8));
        this.#end("client closed the WebSocket");
        return at + 4 + len;
      case 9: {
        const h = frameHeader(len, 10);
        const pong = new Uint8Array(h.length + len);
        pong.set(h);
        pong.set(payload, h.length);
        this.#sink.reply(pong);
        break;
      }
      case 10:
        break;
      default:
        return this.#end(`unknown WebSocket opcode ${opcode}`);
    }
    return at + 4 + len;
  }
}
