/**
 * Rectangle encodings of FramebufferUpdate (RFC 6143 §7.7): Raw, CopyRect
 * and ZRLE, written from 0x00RRGGBB pixels into a growable byte buffer.
 *
 * ZRLE follows QEMU's ui/vnc-enc-zrle.c in shape: 64x64 tiles, each sent as
 * solid, packed palette (2..16 colours), plain RLE or raw, whichever this
 * simple size estimate picks; all tiles of the rectangle go through the
 * client's one zlib stream, sync-flushed once per rectangle.
 *
 * @module
 */
import type { PixelConverter } from "./pixel_format.ts";
import type { Deflater } from "../../sys/zlib.ts";

/** Encoding numbers (RFC 6143 §7.7 and the IANA registry). */
export const ENCODING_RAW = 0;
/** CopyRect. */
export const ENCODING_COPYRECT = 1;
/** ZRLE. */
export const ENCODING_ZRLE = 16;
/** Pseudo-encoding: the client follows desktop size changes. */
export const ENCODING_DESKTOP_SIZE = -223;
/** ZRLE tile edge. */
export const ZRLE_TILE = 64;

/** A growable output buffer with big-endian writers. */
export class ByteWriter {
  /** The bytes (valid up to {@link length}). */
  buf: Uint8Array<ArrayBuffer>;
  /** Bytes written. */
  length = 0;

  /**
   * @param initial starting capacity
   * @example
   * ```ts
   * import { ByteWriter } from "./encodings.ts";
   * const w = new ByteWriter(16);
   * w.u8(0); w.u16(1);
   * console.log(w.bytes()); // Uint8Array [0, 0, 1]
   * ```
   */
  constructor(initial = 4096) {
    this.buf = new Uint8Array(initial);
  }

  /**
   * Makes room for n more bytes.
   *
   * @param n bytes
   */
  ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
  }

  /** @param v a byte */
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.length++] = v;
  }

  /** @param v a big-endian u16 */
  u16(v: number): void {
    this.ensure(2);
    this.buf[this.length++] = (v >>> 8) & 0xff;
    this.buf[this.length++] = v & 0xff;
  }

  /** @param v a big-endian u32 (or s32) */
  u32(v: number): void {
    this.ensure(4);
    const b = this.buf;
    b[this.length++] = (v >>> 24) & 0xff;
    b[this.length++] = (v >>> 16) & 0xff;
    b[this.length++] = (v >>> 8) & 0xff;
    b[this.length++] = v & 0xff;
  }

  /** @param data bytes to append */
  append(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.length);
    this.length += data.length;
  }

  /** @returns the written bytes (a view) */
  bytes(): Uint8Array<ArrayBuffer> {
    return this.buf.subarray(0, this.length);
  }

  /** Forgets the contents, keeping the capacity. */
  reset(): void {
    this.length = 0;
  }
}

/** Pixels to encode from: 0x00RRGGBB words, `stride` words per row. */
export interface PixelSource {
  /** The pixels. */
  px: Uint32Array<ArrayBufferLike>;
  /** Words per row. */
  stride: number;
}

/** A rectangle. */
export interface Rect {
  /** Left. */
  x: number;
  /** Top. */
  y: number;
  /** Width. */
  w: number;
  /** Height. */
  h: number;
}

/**
 * Writes a rectangle header.
 *
 * @param out destination
 * @param r the rectangle
 * @param encoding encoding number (signed)
 */
export function rectHeader(out: ByteWriter, r: Rect, encoding: number): void {
  out.u16(r.x);
  out.u16(r.y);
  out.u16(r.w);
  out.u16(r.h);
  out.u32(encoding >>> 0);
}

/**
 * A Raw rectangle.
 *
 * @param out destination
 * @param src pixels
 * @param r the rectangle (inside src)
 * @param conv the client's format
 */
export function encodeRaw(out: ByteWriter, src: PixelSource, r: Rect, conv: PixelConverter): void {
  rectHeader(out, r, ENCODING_RAW);
  const n = conv.bytes;
  out.ensure(r.w * r.h * n);
  const px = src.px;
  if (conv.native) {
    const bytes = new Uint8Array(px.buffer, px.byteOffset, px.byteLength);
    for (let y = r.y; y < r.y + r.h; y++) {
      const at = (y * src.stride + r.x) * 4;
      out.buf.set(bytes.subarray(at, at + r.w * 4), out.length);
      out.length += r.w * 4;
    }
    return;
  }
  const b = out.buf;
  let o = out.length;
  for (let y = r.y; y < r.y + r.h; y++) {
    const row = y * src.stride;
    for (let x = r.x; x < r.x + r.w; x++) o = conv.put(b, o, conv.convert(px[row + x]), n);
  }
  out.length = o;
}

/**
 * A CopyRect rectangle: the client copies (srcX, srcY) to r from its own screen.
 *
 * @param out destination
 * @param r destination rectangle
 * @param srcX source left
 * @param srcY source top
 */
export function encodeCopyRect(out: ByteWriter, r: Rect, srcX: number, srcY: number): void {
  rectHeader(out, r, ENCODING_COPYRECT);
  out.u16(srcX);
  out.u16(srcY);
}

const palette = new Uint32Array(16);
const paletteConv = new Uint32Array(16);

function zrleTile(
  out: ByteWriter,
  src: PixelSource,
  t: Rect,
  conv: PixelConverter,
  cp: number,
): void {
  const px = src.px, stride = src.stride;
  // Count colours (up to 17) and runs.
  let colours = 0, runs = 0, prev = -1;
  for (let y = t.y; y < t.y + t.h; y++) {
    const row = y * stride;
    for (let x = t.x; x < t.x + t.w; x++) {
      const p = px[row + x];
      if (p !== prev) {
        runs++;
        prev = p;
        if (colours <= 16) {
          let i = 0;
          while (i < colours && palette[i] !== p) i++;
          if (i === colours) {
            if (colours < 16) palette[i] = p;
            colours++;
          }
        }
      }
    }
  }
  const n = t.w * t.h;
  out.ensure(1 + n * cp + 16 * cp + n);
  const b = out.buf;
  let o = out.length;
  if (colours === 1) {
    b[o++] = 1;
    o = conv.putCpixel(b, o, conv.convert(palette[0]), cp);
    out.length = o;
    return;
  }
  if (colours <= 16) {
    b[o++] = colours;
    for (let i = 0; i < colours; i++) {
      paletteConv[i] = conv.convert(palette[i]);
      o = conv.putCpixel(b, o, paletteConv[i], cp);
    }
    const bits = colours === 2 ? 1 : colours <= 4 ? 2 : 4;
    for (let y = t.y; y < t.y + t.h; y++) {
      const row = y * stride;
      let acc = 0, nb = 0;
      for (let x = t.x; x < t.x + t.w; x++) {
        const p = px[row + x];
        let i = 0;
        while (palette[i] !== p) i++;
        acc = (acc << bits) | i;
        nb += bits;
        if (nb === 8) {
          b[o++] = acc;
          acc = 0;
          nb = 0;
        }
      }
      if (nb > 0) b[o++] = acc << (8 - nb);
    }
    out.length = o;
    return;
  }
  // Plain RLE when runs are long enough to beat raw, else raw CPIXELs.
  if (runs * (cp + 1) < n * cp) {
    b[o++] = 128;
    let y = t.y, x = t.x;
    while (y < t.y + t.h) {
      const p = px[y * stride + x];
      let len = 0;
      while (y < t.y + t.h && px[y * stride + x] === p) {
        len++;
        if (++x === t.x + t.w) {
          x = t.x;
          y++;
        }
      }
      // Room was reserved above: runs * (cp + 1) + n / 255 < n * (cp + 1).
      o = conv.putCpixel(b, o, conv.convert(p), cp);
      let rest = len - 1;
      while (rest >= 255) {
        b[o++] = 255;
        rest -= 255;
      }
      b[o++] = rest;
    }
    out.length = o;
    return;
  }
  b[o++] = 0;
  for (let y = t.y; y < t.y + t.h; y++) {
    const row = y * stride;
    for (let x = t.x; x < t.x + t.w; x++) o = conv.putCpixel(b, o, conv.convert(px[row + x]), cp);
  }
  out.length = o;
}

/**
 * A ZRLE rectangle: its 64x64 tiles through the client's zlib stream.
 *
 * @param out destination
 * @param src pixels
 * @param r the rectangle
 * @param options the client's format, its deflate stream, and a scratch buffer for tile data
 */
export function encodeZrle(
  out: ByteWriter,
  src: PixelSource,
  r: Rect,
  options: { conv: PixelConverter; deflater: Deflater; scratch: ByteWriter },
): void {
  const { conv, deflater, scratch } = options;
  const cp = conv.cpixelBytes();
  scratch.reset();
  const t: Rect = { x: 0, y: 0, w: 0, h: 0 };
  for (let ty = r.y; ty < r.y + r.h; ty += ZRLE_TILE) {
    for (let tx = r.x; tx < r.x + r.w; tx += ZRLE_TILE) {
      t.x = tx;
      t.y = ty;
      t.w = Math.min(ZRLE_TILE, r.x + r.w - tx);
      t.h = Math.min(ZRLE_TILE, r.y + r.h - ty);
      zrleTile(scratch, src, t, conv, cp);
    }
  }
  const z = deflater.deflate(scratch.buf, scratch.length);
  rectHeader(out, r, ENCODING_ZRLE);
  out.u32(z.length);
  out.append(z);
}
