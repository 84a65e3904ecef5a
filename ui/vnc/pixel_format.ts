/**
 * RFB pixel formats (RFC 6143 §7.4): the server's native format, parsing a
 * client's SetPixelFormat, and converting framebuffer pixels to it.
 *
 * The framebuffer is always 32 bits per pixel, x8r8g8b8 in little-endian
 * memory (bytes B, G, R, X), the format Linux's efifb/vesafb use with the
 * screen_info we announce.
 *
 * @module
 */

/** A PIXEL_FORMAT as sent on the wire. */
export interface PixelFormat {
  /** Bits per pixel: 8, 16 or 32. */
  bpp: number;
  /** Useful bits. */
  depth: number;
  /** Multi-byte pixels are big-endian. */
  bigEndian: boolean;
  /** True colour (colour maps are not supported). */
  trueColor: boolean;
  /** Maximum red value (2^n - 1). */
  redMax: number;
  /** Maximum green value. */
  greenMax: number;
  /** Maximum blue value. */
  blueMax: number;
  /** Bit position of red. */
  redShift: number;
  /** Bit position of green. */
  greenShift: number;
  /** Bit position of blue. */
  blueShift: number;
}

/** The server's native format: 32 bpp, depth 24, little-endian, R at bit 16. */
export const NATIVE_FORMAT: Readonly<PixelFormat> = Object.freeze({
  bpp: 32,
  depth: 24,
  bigEndian: false,
  trueColor: true,
  redMax: 255,
  greenMax: 255,
  blueMax: 255,
  redShift: 16,
  greenShift: 8,
  blueShift: 0,
});

/**
 * Serialises a pixel format (16 bytes, 3 of padding).
 *
 * @param pf the format
 * @param out destination
 * @param offset where in out
 * @example
 * ```ts
 * import { NATIVE_FORMAT, writePixelFormat } from "./pixel_format.ts";
 * const b = new Uint8Array(16);
 * writePixelFormat(NATIVE_FORMAT, b, 0);
 * ```
 */
export function writePixelFormat(pf: PixelFormat, out: Uint8Array, offset: number): void {
  const v = new DataView(out.buffer, out.byteOffset + offset, 16);
  v.setUint8(0, pf.bpp);
  v.setUint8(1, pf.depth);
  v.setUint8(2, pf.bigEndian ? 1 : 0);
  v.setUint8(3, pf.trueColor ? 1 : 0);
  v.setUint16(4, pf.redMax);
  v.setUint16(6, pf.greenMax);
  v.setUint16(8, pf.blueMax);
  v.setUint8(10, pf.redShift);
  v.setUint8(11, pf.greenShift);
  v.setUint8(12, pf.blueShift);
  v.setUint8(13, 0);
  v.setUint8(14, 0);
  v.setUint8(15, 0);
}

function isMax(m: number): boolean {
  return m > 0 && (m & (m + 1)) === 0;
}

/**
 * Parses and validates a client's pixel format.
 *
 * @param b 16 bytes
 * @returns the format
 * @throws RangeError naming what is unsupported (the client is dropped)
 */
export function readPixelFormat(b: Uint8Array): PixelFormat {
  const v = new DataView(b.buffer, b.byteOffset, 16);
  const pf: PixelFormat = {
    bpp: v.getUint8(0),
    depth: v.getUint8(1),
    bigEndian: v.getUint8(2) !== 0,
    trueColor: v.getUint8(3) !== 0,
    redMax: v.getUint16(4),
    greenMax: v.getUint16(6),
    blueMax: v.getUint16(8),
    redShift: v.getUint8(10),
    greenShift: v.getUint8(11),
    blueShift: v.getUint8(12),
  };
  if (pf.bpp !== 8 && pf.bpp !== 16 && pf.bpp !== 32) {
    throw new RangeError(`Unsupported bits per pixel ${pf.bpp}`);
  }
  if (!pf.trueColor) throw new RangeError("Colour-map pixel formats are not supported");
  for (
    const [max, shift] of [[pf.redMax, pf.redShift], [pf.greenMax, pf.greenShift], [
      pf.blueMax,
      pf.blueShift,
    ]]
  ) {
    if (!isMax(max) || shift + Math.log2(max + 1) > pf.bpp) {
      throw new RangeError(`Invalid colour max ${max} / shift ${shift} for ${pf.bpp} bpp`);
    }
  }
  return pf;
}

/** Converts native 0x00RRGGBB pixels to a client's format, with a small cache of shifts. */
export class PixelConverter {
  /** The client format. */
  readonly pf: PixelFormat;
  /** Bytes per pixel on the wire. */
  readonly bytes: number;
  /** Whether the conversion is the identity (native format). */
  readonly native: boolean;
  #rs: number;
  #gs: number;
  #bs: number;
  #cpLow: boolean;

  /**
   * @param pf the client's format
   * @example
   * ```ts
   * import { PixelConverter, NATIVE_FORMAT } from "./pixel_format.ts";
   * const c = new PixelConverter({ ...NATIVE_FORMAT, bpp: 16, depth: 16, redMax: 31, greenMax: 63, blueMax: 31, redShift: 11, greenShift: 5, blueShift: 0 });
   * console.log(c.convert(0xffffff).toString(16)); // ffff
   * ```
   */
  constructor(pf: PixelFormat) {
    this.pf = pf;
    this.bytes = pf.bpp / 8;
    this.native = pf.bpp === 32 && !pf.bigEndian && pf.redMax === 255 && pf.greenMax === 255 &&
      pf.blueMax === 255 && pf.redShift === 16 && pf.greenShift === 8 && pf.blueShift === 0;
    this.#rs = 8 - Math.log2(pf.redMax + 1);
    this.#gs = 8 - Math.log2(pf.greenMax + 1);
    this.#bs = 8 - Math.log2(pf.blueMax + 1);
    this.#cpLow = Math.max(
      pf.redShift + Math.log2(pf.redMax + 1),
      pf.greenShift + Math.log2(pf.greenMax + 1),
      pf.blueShift + Math.log2(pf.blueMax + 1),
    ) <= 24;
  }

  /**
   * One pixel.
   *
   * @param rgb 0x00RRGGBB
   * @returns the client's pixel value
   */
  convert(rgb: number): number {
    const pf = this.pf;
    const r = (rgb >>> 16) & 0xff, g = (rgb >>> 8) & 0xff, b = rgb & 0xff;
    return (((r >>> this.#rs) << pf.redShift) | ((g >>> this.#gs) << pf.greenShift) |
      ((b >>> this.#bs) << pf.blueShift)) >>> 0;
  }

  /**
   * Writes one client pixel of `n` bytes (n = bytes, or 3 for ZRLE's CPIXEL).
   *
   * @param out destination
   * @param at offset
   * @param value a converted pixel
   * @param n bytes to write
   * @returns the offset after it
   */
  put(out: Uint8Array, at: number, value: number, n: number): number {
    if (this.pf.bigEndian) {
      for (let i = n - 1; i >= 0; i--) out[at++] = (value >>> (8 * i)) & 0xff;
    } else {
      for (let i = 0; i < n; i++) out[at++] = (value >>> (8 * i)) & 0xff;
    }
    return at;
  }

  /**
   * Bytes of a ZRLE CPIXEL: 3 when a 32-bpp format's colour bits fit in the
   * low (or, big-endian on the wire, the high) three bytes, else bpp/8.
   *
   * @returns 1, 2, 3 or 4
   */
  cpixelBytes(): number {
    const pf = this.pf;
    if (pf.bpp !== 32 || pf.depth > 24) return this.bytes;
    const top = Math.max(
      pf.redShift + Math.log2(pf.redMax + 1),
      pf.greenShift + Math.log2(pf.greenMax + 1),
      pf.blueShift + Math.log2(pf.blueMax + 1),
    );
    const bottom = Math.min(pf.redShift, pf.greenShift, pf.blueShift);
    // Fits in the least significant 3 bytes, or in the most significant 3.
    return top <= 24 || bottom >= 8 ? 3 : 4;
  }

  /**
   * Writes a CPIXEL of `n` bytes (see {@link cpixelBytes}).
   *
   * @param out destination
   * @param at offset
   * @param value a converted pixel
   * @param n from cpixelBytes()
   * @returns the offset after it
   */
  putCpixel(out: Uint8Array, at: number, value: number, n: number): number {
    if (n !== 3 || this.pf.bpp !== 32) return this.put(out, at, value, n);
    const v = this.#cpLow ? value : value >>> 8;
    // The 3 bytes keep the wire byte order of the 4-byte pixel minus the empty byte.
    return this.put(out, at, v, 3);
  }
}
