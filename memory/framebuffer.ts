/**
 * A linear framebuffer: memfd-backed memory the guest sees at a fixed
 * guest-physical address (a KVM memory slot in the PCI hole) and the VMM
 * sees at a host address every thread can use, so a display worker reads
 * pixels where the guest writes them, with no copy.
 *
 * @module
 */
import {
  closeFd,
  hostBuffer,
  MAP_SHARED,
  memfd,
  mmap,
  munmap,
  PROT_READ,
  PROT_WRITE,
} from "../sys/fd.ts";

/** Where the framebuffer sits: the top of the 32-bit PCI window, below the IOAPIC. */
export const FRAMEBUFFER_GPA = 0xfd00_0000;
/** The most it may take (up to the IOAPIC at 0xfec00000). */
export const FRAMEBUFFER_MAX_BYTES = 0xfec0_0000 - FRAMEBUFFER_GPA;
/** Bytes per pixel (x8r8g8b8). */
export const FRAMEBUFFER_BPP = 4;

/** What a display needs to know about the framebuffer: plain data, postMessage-able. */
export interface FramebufferInfo {
  /** The backing memfd (map it elsewhere, or use hostAddr in this process). */
  readonly fd: number;
  /** Host address of the mapping (valid in every thread of this process). */
  readonly hostAddr: bigint;
  /** Bytes mapped (a whole number of pages). */
  readonly size: number;
  /** Guest-physical address. */
  readonly guestAddr: number;
  /** Pixels per line. */
  readonly width: number;
  /** Lines. */
  readonly height: number;
  /** Bytes per line. */
  readonly stride: number;
  /** Pixel layout: 32 bits, blue in the low byte (x8r8g8b8, little-endian). */
  readonly format: "x8r8g8b8";
}

/**
 * Allocates and owns a framebuffer's memory.
 *
 * @example
 * ```ts
 * import { Framebuffer } from "./framebuffer.ts";
 * const fb = Framebuffer.allocate(640, 480);
 * new Uint32Array(fb.buffer())[0] = 0x00ff0000; // a red pixel at (0, 0)
 * fb.close();
 * ```
 */
export class Framebuffer {
  /** Its description. */
  readonly info: FramebufferInfo;
  #closed = false;

  private constructor(info: FramebufferInfo) {
    this.info = info;
  }

  /**
   * Allocates a framebuffer of width x height pixels.
   *
   * @param width pixels per line (1..8192)
   * @param height lines (1..8192)
   * @returns the framebuffer, zeroed (black)
   * @throws {RangeError} when it does not fit below the IOAPIC
   */
  static allocate(width: number, height: number): Framebuffer {
    for (const [what, v] of [["width", width], ["height", height]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 8192) {
        throw new RangeError(`Invalid framebuffer ${what} ${v}: use 1 to 8192`);
      }
    }
    const stride = width * FRAMEBUFFER_BPP;
    const size = Math.ceil((stride * height) / 4096) * 4096;
    if (size > FRAMEBUFFER_MAX_BYTES) {
      throw new RangeError(
        `A ${width}x${height} framebuffer needs ${size} bytes; at most ${FRAMEBUFFER_MAX_BYTES} fit`,
      );
    }
    const fd = memfd("denovmm-framebuffer", size);
    let hostAddr: bigint;
    try {
      hostAddr = mmap(size, { prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd });
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    return new Framebuffer({
      fd,
      hostAddr,
      size,
      guestAddr: FRAMEBUFFER_GPA,
      width,
      height,
      stride,
      format: "x8r8g8b8",
    });
  }

  /**
   * The pixels, aliased (no copy).
   *
   * @returns an ArrayBuffer over the mapping
   */
  buffer(): ArrayBuffer {
    return hostBuffer(this.info.hostAddr, this.info.size);
  }

  /** Unmaps and closes it (after the VM that maps it is gone). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    munmap(this.info.hostAddr, this.info.size);
    closeFd(this.info.fd);
  }
}
