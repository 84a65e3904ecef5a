/** Test framebuffers in shared memory, and pictures to draw on them. */
import { GEOMETRY_WORDS } from "../encoder_core.ts";
import type { FramebufferSource } from "../encoder.ts";

export interface TestFb {
  source: FramebufferSource;
  px: Uint32Array;
  geometry: Int32Array;
  width: number;
  height: number;
  stride: number; // words
}

/** A framebuffer of up to maxW x maxH with a stride wider than the width (as real ones may be). */
export function makeFb(width: number, height: number, maxBytes = 0): TestFb {
  const stride = width + 16;
  const sab = new SharedArrayBuffer(Math.max(maxBytes, stride * height * 4));
  const geo = new SharedArrayBuffer(GEOMETRY_WORDS * 4);
  const geometry = new Int32Array(geo);
  geometry.set([1, width, height, stride * 4]);
  return {
    source: { sab, geometry: geo },
    px: new Uint32Array(sab),
    geometry,
    width,
    height,
    stride,
  };
}

/** Changes the mode: new size, generation bumped. */
export function resize(fb: TestFb, width: number, height: number): void {
  fb.width = width;
  fb.height = height;
  fb.stride = width;
  Atomics.store(fb.geometry, 1, width);
  Atomics.store(fb.geometry, 2, height);
  Atomics.store(fb.geometry, 3, width * 4);
  Atomics.add(fb.geometry, 0, 1);
}

let seed = 12345;
export function rand(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed >>> 8;
}

/** A mix that exercises every ZRLE tile kind: solid, 2-colour text, few colours, gradients, noise. */
export function drawScene(fb: TestFb, salt = 0): void {
  const { px, width, height, stride } = fb;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v: number;
      const zone = ((x >> 6) + (y >> 6) + salt) % 5;
      if (zone === 0) v = 0x203040;
      else if (zone === 1) v = ((x * 7 + y * 3 + salt) % 11 < 4) ? 0xffffff : 0x000000; // "text"
      else if (zone === 2) v = [0xff0000, 0x00ff00, 0x0000ff, 0xffff00, 0x123456][(x >> 3) % 5];
      else if (zone === 3) v = ((x * 4) & 0xff) << 16 | ((y * 4) & 0xff) << 8 | (salt & 0xff);
      else v = rand() & 0xffffff;
      px[y * stride + x] = v;
    }
  }
}

/** A framebuffer's visible pixels as 0x00RRGGBB, row-major, no stride. */
export function visible(fb: TestFb): Uint32Array {
  const out = new Uint32Array(fb.width * fb.height);
  for (let y = 0; y < fb.height; y++) {
    for (let x = 0; x < fb.width; x++) out[y * fb.width + x] = fb.px[y * fb.stride + x] & 0xffffff;
  }
  return out;
}
