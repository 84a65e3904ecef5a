/**
 * What is on a machine's display, as a picture: the library's
 * `Vm.screenshot()` for scripts and tests that look at the screen, and what
 * QMP `screendump` writes (ui/screendump.ts). The pixels are read from video
 * memory (0x00RRGGBB words) in the mode the guest set last, checked against
 * the memory before any read.
 *
 * @module
 */
import { modeFits } from "../devices/display/linear_framebuffer.ts";

/** A picture of the display: RGB, 3 bytes a pixel, rows top to bottom. */
export interface Screenshot {
  /** Pixels per row. */
  width: number;
  /** Rows. */
  height: number;
  /** `width * height * 3` bytes. */
  rgb: Uint8Array<ArrayBuffer>;
}

/** Video memory as the framebuffer device shares it. */
export interface FramebufferMemory {
  /** Host address of the mapping. */
  hostAddr: bigint;
  /** Its bytes. */
  size: number;
  /** [generation, width, height, stride, offset] (linear_framebuffer.ts). */
  geometry: SharedArrayBuffer;
}

/**
 * The display now.
 *
 * @param fb the video memory and its mode
 * @returns the picture
 * @throws RangeError when the mode does not fit the memory (nothing is read)
 */
export function captureFramebuffer(fb: FramebufferMemory): Screenshot {
  const g = new Int32Array(fb.geometry);
  const mode = {
    width: Atomics.load(g, 1),
    height: Atomics.load(g, 2),
    stride: Atomics.load(g, 3),
    offset: Atomics.load(g, 4),
  };
  if (!modeFits(mode, fb.size)) {
    throw new RangeError(`display mode ${mode.width}x${mode.height} does not fit video memory`);
  }
  const mem = new Uint8Array(
    Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(fb.hostAddr)!, fb.size),
  );
  const { width, height, stride, offset } = mode;
  const rgb = new Uint8Array(width * height * 3);
  let o = 0;
  for (let y = 0; y < height; y++) {
    let i = offset + y * stride;
    for (let x = 0; x < width; x++, i += 4) {
      // Little-endian 0x00RRGGBB: B, G, R, X in memory.
      rgb[o++] = mem[i + 2];
      rgb[o++] = mem[i + 1];
      rgb[o++] = mem[i];
    }
  }
  return { width, height, rgb };
}
