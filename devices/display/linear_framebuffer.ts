/**
 * A linear framebuffer in guest-physical memory: video memory the guest
 * writes directly (its own KVM memory slot, so drawing costs no exits), and
 * the host reads in place from the same mapping (the VNC encoder).
 * Announced to Linux through screen_info (boot/screen_info.ts); no registers.
 *
 * The mapping is a memfd with MAP_SHARED, like guest RAM, so any Worker of
 * the process can view it by host address. Geometry lives in shared words
 * (generation, width, height, stride) so a mode change reaches the encoder.
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
/** Shared geometry words. */
const GEOMETRY_WORDS = 4;

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
  /** Shared geometry: [generation, width, height, stride bytes]. */
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
    const stride = width * 4;
    if (
      !Number.isInteger(width) || !Number.isInteger(height) || width < 16 || height < 16 ||
      width > 4096 || height > 4096 || stride * height > this.size
    ) {
      throw new RangeError(
        `Display mode ${width}x${height} does not fit ${this.size >> 20} MiB of video memory`,
      );
    }
    const g = new Int32Array(this.geometry);
    Atomics.store(g, 1, width);
    Atomics.store(g, 2, height);
    Atomics.store(g, 3, stride);
    Atomics.add(g, 0, 1);
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
