/**
 * A scripted RFB client for tests, written from RFC 6143 independently of
 * the server's encoders: handshake, authentication, and decoding of Raw,
 * CopyRect, ZRLE and DesktopSize into its own copy of the screen (pixel
 * values in the client's format).
 *
 * @module
 */
import { Inflater } from "../../sys/zlib.ts";
import { vncAuthResponse } from "./des.ts";

/** A client pixel format (subset of fields the tests vary). */
export interface TestFormat {
  bpp: number;
  depth: number;
  bigEndian: boolean;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

/** The server's native format. */
export const NATIVE: TestFormat = {
  bpp: 32,
  depth: 24,
  bigEndian: false,
  redMax: 255,
  greenMax: 255,
  blueMax: 255,
  redShift: 16,
  greenShift: 8,
  blueShift: 0,
};

/** RGB565, big-endian on the wire. */
export const RGB565_BE: TestFormat = {
  bpp: 16,
  depth: 16,
  bigEndian: true,
  redMax: 31,
  greenMax: 63,
  blueMax: 31,
  redShift: 11,
  greenShift: 5,
  blueShift: 0,
};

/** The expected client pixel for a framebuffer word 0xXXRRGGBB (independent formula). */
export function expectPixel(f: TestFormat, rgb: number): number {
  const r = (rgb >> 16) & 0xff, g = (rgb >> 8) & 0xff, b = rgb & 0xff;
  const scale = (v: number, max: number) => Math.floor((v * (max + 1)) / 256);
  return ((scale(r, f.redMax) << f.redShift) | (scale(g, f.greenMax) << f.greenShift) |
    (scale(b, f.blueMax) << f.blueShift)) >>> 0;
}

/** A connected test client. */
export class RfbTestClient {
  conn: Deno.Conn;
  #buf = new Uint8Array(0);
  width = 0;
  height = 0;
  name = "";
  format: TestFormat = NATIVE;
  screen = new Uint32Array(0);
  #inflater: Inflater | null = null;
  /** Encodings seen in the last update. */
  seen: number[] = [];

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  static async connect(port: number): Promise<RfbTestClient> {
    return new RfbTestClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async read(n: number, timeoutMs = 10_000): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    while (this.#buf.length < n) {
      const chunk = new Uint8Array(256 * 1024);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const got = await Promise.race([
        this.conn.read(chunk),
        new Promise<"timeout">((r) =>
          timer = setTimeout(() => r("timeout"), deadline - Date.now())
        ),
      ]);
      clearTimeout(timer);
      if (got === "timeout") throw new Error(`Timed out waiting for ${n} bytes`);
      if (got === null) {
        throw new Error(`Connection closed (wanted ${n}, have ${this.#buf.length})`);
      }
      const b = new Uint8Array(this.#buf.length + got);
      b.set(this.#buf);
      b.set(chunk.subarray(0, got), this.#buf.length);
      this.#buf = b;
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  async u8(): Promise<number> {
    return (await this.read(1))[0];
  }
  async u16(): Promise<number> {
    const b = await this.read(2);
    return (b[0] << 8) | b[1];
  }
  async u32(): Promise<number> {
    const b = await this.read(4);
    return new DataView(b.buffer).getUint32(0);
  }

  async write(bytes: Uint8Array | number[]): Promise<void> {
    const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    let off = 0;
    while (off < b.length) off += await this.conn.write(b.subarray(off));
  }

  /** Version exchange; returns the security types offered (3.8). */
  async version(v = "RFB 003.008\n"): Promise<number[]> {
    const server = new TextDecoder().decode(await this.read(12));
    if (server !== "RFB 003.008\n") throw new Error(`Server version ${JSON.stringify(server)}`);
    await this.write(new TextEncoder().encode(v));
    if (v === "RFB 003.003\n") return [await this.u32()];
    const n = await this.u8();
    if (n === 0) throw new Error(`Refused: ${await this.reason()}`);
    return [...await this.read(n)];
  }

  async reason(): Promise<string> {
    const len = await this.u32();
    return new TextDecoder().decode(await this.read(len));
  }

  /** Full handshake with security None or VNC auth; returns the SecurityResult. */
  async handshake(options: { password?: string; shared?: boolean } = {}): Promise<number> {
    const types = await this.version();
    const type = options.password !== undefined ? 2 : 1;
    if (!types.includes(type)) throw new Error(`Security type ${type} not offered: ${types}`);
    await this.write([type]);
    if (type === 2) {
      const challenge = await this.read(16);
      await this.write(vncAuthResponse(new TextEncoder().encode(options.password!), challenge));
    }
    const result = await this.u32();
    if (result !== 0) return result;
    await this.init(options.shared ?? true);
    return 0;
  }

  async init(shared: boolean): Promise<void> {
    await this.write([shared ? 1 : 0]);
    this.width = await this.u16();
    this.height = await this.u16();
    await this.read(16); // pixel format: the tests set their own
    this.name = new TextDecoder().decode(await this.read(await this.u32()));
    this.screen = new Uint32Array(this.width * this.height);
  }

  async setPixelFormat(f: TestFormat): Promise<void> {
    const b = new Uint8Array(20);
    const v = new DataView(b.buffer);
    v.setUint8(0, 0);
    v.setUint8(4, f.bpp);
    v.setUint8(5, f.depth);
    v.setUint8(6, f.bigEndian ? 1 : 0);
    v.setUint8(7, 1);
    v.setUint16(8, f.redMax);
    v.setUint16(10, f.greenMax);
    v.setUint16(12, f.blueMax);
    v.setUint8(14, f.redShift);
    v.setUint8(15, f.greenShift);
    v.setUint8(16, f.blueShift);
    this.format = f;
    await this.write(b);
  }

  async setEncodings(encs: number[]): Promise<void> {
    const b = new Uint8Array(4 + 4 * encs.length);
    const v = new DataView(b.buffer);
    v.setUint8(0, 2);
    v.setUint16(2, encs.length);
    encs.forEach((e, i) => v.setInt32(4 + 4 * i, e));
    await this.write(b);
  }

  async requestUpdate(incremental: boolean, r = { x: 0, y: 0, w: this.width, h: this.height }) {
    const b = new Uint8Array(10);
    const v = new DataView(b.buffer);
    v.setUint8(0, 3);
    v.setUint8(1, incremental ? 1 : 0);
    v.setUint16(2, r.x);
    v.setUint16(4, r.y);
    v.setUint16(6, r.w);
    v.setUint16(8, r.h);
    await this.write(b);
  }

  async key(down: boolean, keysym: number): Promise<void> {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint8(0, 4);
    v.setUint8(1, down ? 1 : 0);
    v.setUint32(4, keysym);
    await this.write(b);
  }

  async pointer(buttons: number, x: number, y: number): Promise<void> {
    const b = new Uint8Array(6);
    const v = new DataView(b.buffer);
    v.setUint8(0, 5);
    v.setUint8(1, buttons);
    v.setUint16(2, x);
    v.setUint16(4, y);
    await this.write(b);
  }

  #pixel(b: Uint8Array, at: number, n: number): number {
    let v = 0;
    if (this.format.bigEndian) { for (let i = 0; i < n; i++) v = (v * 256) + b[at + i]; }
    else for (let i = n - 1; i >= 0; i--) v = (v * 256) + b[at + i];
    return v >>> 0;
  }

  /** Reads one server message; decodes a FramebufferUpdate into screen. Returns its type. */
  async message(timeoutMs = 10_000): Promise<number> {
    const type = (await this.read(1, timeoutMs))[0];
    if (type === 0) {
      await this.read(1);
      const n = await this.u16();
      this.seen = [];
      for (let i = 0; i < n; i++) await this.#rect();
      return 0;
    }
    if (type === 2) return 2; // Bell
    if (type === 3) {
      await this.read(3);
      await this.read(await this.u32());
      return 3;
    }
    throw new Error(`Unknown server message ${type}`);
  }

  async #rect(): Promise<void> {
    const x = await this.u16(), y = await this.u16(), w = await this.u16(), h = await this.u16();
    const enc = (await this.u32()) | 0;
    this.seen.push(enc);
    const bpp = this.format.bpp / 8;
    if (enc === -223) {
      this.width = w;
      this.height = h;
      this.screen = new Uint32Array(w * h);
      return;
    }
    if (x + w > this.width || y + h > this.height) {
      throw new Error(`Rect ${x},${y} ${w}x${h} off screen`);
    }
    if (enc === 0) {
      const b = await this.read(w * h * bpp);
      for (let j = 0; j < h; j++) {
        for (let i = 0; i < w; i++) {
          this.screen[(y + j) * this.width + x + i] = this.#pixel(b, (j * w + i) * bpp, bpp);
        }
      }
      return;
    }
    if (enc === 1) {
      const sx = await this.u16(), sy = await this.u16();
      const copy = new Uint32Array(w * h);
      for (let j = 0; j < h; j++) {
        copy.set(
          this.screen.subarray((sy + j) * this.width + sx, (sy + j) * this.width + sx + w),
          j * w,
        );
      }
      for (let j = 0; j < h; j++) {
        this.screen.set(copy.subarray(j * w, j * w + w), (y + j) * this.width + x);
      }
      return;
    }
    if (enc === 16) {
      const len = await this.u32();
      const z = await this.read(len);
      this.#inflater ??= new Inflater();
      this.#zrle(z, x, y, w, h);
      return;
    }
    throw new Error(`Unexpected encoding ${enc}`);
  }

  #zrle(z: Uint8Array, x: number, y: number, w: number, h: number): void {
    // Inflate exactly what the tiles need: decode with a pull reader over a growing output.
    const f = this.format;
    const cp = f.bpp === 32 && f.depth <= 24 ? 3 : f.bpp / 8;
    // Worst case size, then trim by decoding: inflate all of it at once (the stream is flushed).
    const data = this.#inflateAll(z);
    let o = 0;
    const cpixel = () => {
      let v = 0;
      if (cp === 3 && f.bpp === 32) {
        // Little-endian wire order: least significant byte first.
        v = data[o] | (data[o + 1] << 8) | (data[o + 2] << 16);
        if (f.bigEndian) v = (data[o] << 16) | (data[o + 1] << 8) | data[o + 2];
      } else v = this.#pixel(data, o, cp);
      o += cp;
      return v >>> 0;
    };
    for (let ty = y; ty < y + h; ty += 64) {
      for (let tx = x; tx < x + w; tx += 64) {
        const tw = Math.min(64, x + w - tx), th = Math.min(64, y + h - ty);
        const put = (i: number, v: number) => {
          this.screen[(ty + Math.floor(i / tw)) * this.width + tx + (i % tw)] = v;
        };
        const sub = data[o++];
        if (sub === 0) {
          for (let i = 0; i < tw * th; i++) put(i, cpixel());
        } else if (sub === 1) {
          const v = cpixel();
          for (let i = 0; i < tw * th; i++) put(i, v);
        } else if (sub >= 2 && sub <= 16) {
          const pal = Array.from({ length: sub }, cpixel);
          const bits = sub === 2 ? 1 : sub <= 4 ? 2 : 4;
          for (let j = 0; j < th; j++) {
            let bitPos = 0;
            const rowStart = o;
            for (let i = 0; i < tw; i++) {
              const byte = data[rowStart + (bitPos >> 3)];
              const idx = (byte >> (8 - bits - (bitPos & 7))) & ((1 << bits) - 1);
              put(j * tw + i, pal[idx]);
              bitPos += bits;
            }
            o = rowStart + Math.ceil((tw * bits) / 8);
          }
        } else if (sub === 128 || sub >= 130) {
          const pal = sub >= 130 ? Array.from({ length: sub - 128 }, cpixel) : [];
          let i = 0;
          while (i < tw * th) {
            let v: number, len = 1;
            if (sub === 128) {
              v = cpixel();
              len = this.#runLength(data, () => data[o++]);
            } else {
              const idx = data[o++];
              v = pal[idx & 0x7f];
              if (idx & 0x80) len = this.#runLength(data, () => data[o++]);
            }
            if (i + len > tw * th) throw new Error("ZRLE run past the tile");
            for (let k = 0; k < len; k++) put(i++, v);
          }
        } else throw new Error(`Bad ZRLE subencoding ${sub}`);
      }
    }
    if (o !== data.length) throw new Error(`ZRLE: ${data.length - o} bytes left over`);
  }

  #runLength(_d: Uint8Array, next: () => number): number {
    let len = 1, b;
    do {
      b = next();
      len += b;
    } while (b === 255);
    return len;
  }

  #inflateAll(z: Uint8Array): Uint8Array {
    return this.#inflater!.inflate(z);
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.#inflater?.close();
  }
}
