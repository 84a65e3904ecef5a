/**
 * QMP `screendump`'s files: a picture of the display (ui/screenshot.ts) as
 * QEMU's binary PPM, or as PNG with `format: "png"`, written through libc.
 *
 * @module
 */
import type { Screenshot } from "./screenshot.ts";
import { closeFd, O_CREAT, O_TRUNC, O_WRONLY, openFile, writeAll } from "../sys/fd.ts";
import { zlibAvailable, zlibCompress } from "../sys/zlib.ts";

/**
 * A binary PPM (P6), QEMU's screendump format.
 *
 * @param s the picture
 * @returns the file's bytes
 */
export function encodePpm(s: Screenshot): Uint8Array<ArrayBuffer> {
  const head = new TextEncoder().encode(`P6\n${s.width} ${s.height}\n255\n`);
  const out = new Uint8Array(head.length + s.rgb.length);
  out.set(head);
  out.set(s.rgb, head.length);
  return out;
}

/** The PNG signature (PNG 1.2, 12.12). */
const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** CRC-32 of ISO 3309 (PNG's chunks), a byte at a time. */
const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/**
 * A picture's rows as PNG filters them before compression: each row led by
 * its filter type, 0 (none).
 *
 * @param s the picture
 * @returns `(width * 3 + 1) * height` bytes
 */
export function pngRows(s: Screenshot): Uint8Array<ArrayBuffer> {
  const row = s.width * 3;
  const raw = new Uint8Array((row + 1) * s.height);
  for (let y = 0; y < s.height; y++) {
    raw.set(s.rgb.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  }
  return raw;
}

/**
 * A PNG file around compressed rows: 8-bit RGB, no interlace.
 *
 * @param width pixels per row
 * @param height rows
 * @param idat a zlib stream of {@link pngRows}
 * @returns the file's bytes
 */
export function pngFile(width: number, height: number, idat: Uint8Array): Uint8Array<ArrayBuffer> {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // depth 8, colour type 2 (RGB), deflate, filter 0, no interlace
  const parts = [
    new Uint8Array(PNG_SIGNATURE),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A PNG of the picture, its rows compressed by libz.
 *
 * @param s the picture
 * @returns the file's bytes
 * @throws Error when the host has no libz (`format: "ppm"` needs none)
 */
export function encodePng(s: Screenshot): Uint8Array<ArrayBuffer> {
  if (!zlibAvailable()) throw new Error("PNG needs libz (zlib1g), which this host lacks: use ppm");
  return pngFile(s.width, s.height, zlibCompress(pngRows(s)));
}

/**
 * Writes a picture to a file (created 0644 or truncated), through libc.
 *
 * @param path where
 * @param s the picture
 * @param format `ppm` (QEMU's default) or `png`
 * @throws ErrnoError when the file cannot be written
 */
export function writeScreendump(path: string, s: Screenshot, format: "ppm" | "png"): void {
  const bytes = format === "png" ? encodePng(s) : encodePpm(s);
  const fd = openFile(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644);
  try {
    writeAll(fd, bytes);
  } finally {
    closeFd(fd);
  }
}
