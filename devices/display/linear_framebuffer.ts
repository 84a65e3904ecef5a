/**
 * A linear framebuffer in guest-physical memory: video memory the guest
 * writes directly (its own KVM memory slot, so drawing costs no exits), and
 * the host reads in place from the same mapping (the VNC encoder).
 * Announced to Linux through screen_info (boot/screen_info.ts); no registers.
 *
 * The mapping is a memfd with MAP_SHARED, like guest RAM, so any Worker of
 * the process can view it by host address. Geometry lives in shared words
 * (generation, width, height, stride, offset) so a mode change (the host's,
 * or the guest's through the Bochs display) reaches the encoder.
 *
 * @module
 */
import { closeFd, MAP_SHARED, memfd, mmap, munmap, PROT_READ, PROT_WRITE } from "../../sys/fd.ts";
import type { LinearFramebufferInfo } from "../../boot/screen_info.ts";

/** Where the framebuffer sits: in the 32-bit PCI hole, above the BARs we allocate from 0xc0000000. */
export const FRAMEBUFFER_GPA = 0xfd00_0000;
/** Video memory, as QEMU's standard VGA: 16 MiB (up to 2560x1600x32). */
export const FRAMEBUFFER_BYTES = 16 << 20;
/** KVM memory slot for video memory (RAM uses the first slots). */
export const FRAMEBUFFER_SLOT = 8;
/** Default mode. */
export const DEFAULT_WIDTH = 1024;
/** Default mode. */
export const DEFAULT_HEIGHT = 768;
/** Shared geometry words: [generation, width, height, stride bytes, first pixel's byte offset]. */
const GEOMETRY_WORDS = 5;

/** A scan-out mode over video memory: 32 bits per pixel. */
export interface FramebufferMode {
  /** Pixels per row. */
  width: number;
  /** Rows. */
  height: number;
  /** Bytes from one row to the next (at least width * 4, a multiple of 4). */
  stride: number;
  /** Byte offset of the first pixel (a multiple of 4). */
  offset: number;
}

/**
 * Whether a mode lies inside `size` bytes of video memory and within the
 * sizes the display serves (16 to 4096 pixels each way).
 *
 * @param m the mode (guest-controlled where a display device sets it)
 * @param size bytes of video memory
 * @returns whether it can be published
 * @example
 * ```ts
 * import { modeFits } from "./linear_framebuffer.ts";
 * console.log(modeFits({ width: 800, height: 600, stride: 3200, offset: 0 }, 16 << 20)); // true
 * ```
 */
export function modeFits(m: FramebufferMode, size: number): boolean {
  const { width, height, stride, offset } = m;
  const ok = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  return ok(width, 16, 4096) && ok(height, 16, 4096) && ok(stride, width * 4, 0x4000_0000) &&
    stride % 4 === 0 && ok(offset, 0, size) && offset % 4 === 0 &&
    offset + stride * (height - 1) + width * 4 <= size;
}

/**
 * Publishes a mode to the shared geometry words (the encoder picks it up by
 * the bumped generation). Any thread; check {@link modeFits} first.
 *
 * @param geometry the framebuffer's geometry words
 * @param m the mode
 * @example
 * ```ts ignore
 * publishMode(new Int32Array(fb.geometry), { width: 800, height: 600, stride: 3200, offset: 0 });
 * ```
 */
export function publishMode(geometry: Int32Array, m: FramebufferMode): void {
  Atomics.store(geometry, 1, m.width);
  Atomics.store(geometry, 2, m.height);
  Atomics.store(geometry, 3, m.stride);
  Atomics.store(geometry, 4, m.offset);
  Atomics.add(geometry, 0, 1);
}

/**
 * Video memory plus its geometry.
 *
 * @example
 * ```ts
 * import { LinearFramebuffer } from "./linear_framebuffer.ts";
 * const fb = LinearFramebuffer.create({ width: 640, height: 480 });
 * fb.pixels()[0] = 0xff0000; // top-left pixel red
 * fb.close();
 * ```
 */
export class LinearFramebuffer {
  /** Guest-physical base. */
  readonly gpa: number;
  /** Bytes of video memory. */
  readonly size: number;
  /** Host address of the mapping. */
  readonly hostAddr: bigint;
  /** Shared geometry: [generation, width, height, stride bytes, first pixel's byte offset]. */
  readonly geometry: SharedArrayBuffer;
  #fd: number;
  #closed = false;

  private constructor(gpa: number, size: number, hostAddr: bigint, fd: number) {
    this.gpa = gpa;
    this.size = size;
    this.hostAddr = hostAddr;
    this.#fd = fd;
    this.geometry = new SharedArrayBuffer(GEOMETRY_WORDS * 4);
  }

  /**
   * Maps video memory and sets the mode.
   *
   * @param options mode (default 1024x768), base and size
   * @returns the framebuffer
   * @throws RangeError when the mode does not fit the video memory
   */
  static create(
    options: { width?: number; height?: number; gpa?: number; size?: number } = {},
  ): LinearFramebuffer {
    const size = options.size ?? FRAMEBUFFER_BYTES;
    const fd = memfd("denovmm-vram", size);
    try {
      const addr = mmap(size, { prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd });
      const fb = new LinearFramebuffer(options.gpa ?? FRAMEBUFFER_GPA, size, addr, fd);
      fb.setMode(options.width ?? DEFAULT_WIDTH, options.height ?? DEFAULT_HEIGHT);
      return fb;
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  /**
   * Changes the mode (what a mode-setting device would do); the encoder
   * sees the new generation and tells clients the new size.
   *
   * @param width pixels
   * @param height pixels
   */
  setMode(width: number, height: number): void {
    const mode = { width, height, stride: width * 4, offset: 0 };
    if (!modeFits(mode, this.size)) {
      throw new RangeError(
        `Display mode ${width}x${height} does not fit ${this.size >> 20} MiB of video memory`,
      );
    }
    publishMode(new Int32Array(this.geometry), mode);
  }

  /** The mode as the guest is told (screen_info). */
  get info(): LinearFramebufferInfo {
    const g = new Int32Array(this.geometry);
    return { base: this.gpa, size: this.size, width: g[1], height: g[2], stride: g[3] };
  }

  /** The KVM memory region (slot {@link FRAMEBUFFER_SLOT}). */
  get region(): { guestAddr: number; size: number; hostAddr: bigint } {
    return { guestAddr: this.gpa, size: this.size, hostAddr: this.hostAddr };
  }

  /** What the VNC encoder reads: the mapping by address, and the geometry. */
  get source(): { addr: bigint; length: number; geometry: SharedArrayBuffer } {
    return { addr: this.hostAddr, length: this.size, geometry: this.geometry };
  }

  /**
   * The video memory as pixels (0xXXRRGGBB words), for host-side drawing and tests.
   *
   * @returns a view over the mapping
   */
  pixels(): Uint32Array {
    const p = Deno.UnsafePointer.create(this.hostAddr);
    return new Uint32Array(Deno.UnsafePointerView.getArrayBuffer(p!, this.size));
  }

  /** Unmaps and closes (after the VM and the encoder are gone). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    munmap(this.hostAddr, this.size);
    closeFd(this.#fd);
  }
}
