/**
 * PNG screenshots of a test client's screen (0x00RRGGBB pixels), through
 * the VMM's own PNG writer (ui/screendump.ts) but compressed with node:zlib:
 * the nested KVM host's test process has no libz to dlopen.
 */
import { deflateSync } from "node:zlib";
import { pngFile, pngRows } from "../../screendump.ts";

/** Encodes 0x00RRGGBB pixels as a PNG. */
export function encodePng(px: Uint32Array, width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    rgb[i * 3] = (px[i] >> 16) & 0xff;
    rgb[i * 3 + 1] = (px[i] >> 8) & 0xff;
    rgb[i * 3 + 2] = px[i] & 0xff;
  }
  const shot = { width, height, rgb };
  return pngFile(width, height, new Uint8Array(deflateSync(pngRows(shot))));
}
