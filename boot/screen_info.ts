/**
 * `boot_params.screen_info` for a linear framebuffer (Linux's
 * include/uapi/linux/screen_info.h): with VIDEO_TYPE_VLFB there, the
 * kernel's firmware-framebuffer drivers (simpledrm / simplefb through sysfb,
 * or vesafb) drive the framebuffer with no modules from the initramfs. Only
 * the bzImage (64-bit boot protocol) path carries it; PVH has no such field.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";

/** orig_video_isVGA for a VESA linear framebuffer. */
export const VIDEO_TYPE_VLFB = 0x23;
/** capabilities: ext_lfb_base holds the high 32 bits of the base. */
export const VIDEO_CAPABILITY_64BIT_BASE = 1 << 1;

/** struct screen_info offsets (packed, at the start of boot_params). */
export const SCREEN_INFO = {
  orig_video_isVGA: 0x0f,
  lfb_width: 0x12,
  lfb_height: 0x14,
  lfb_depth: 0x16,
  lfb_base: 0x18,
  lfb_size: 0x1c,
  lfb_linelength: 0x24,
  red_size: 0x26,
  red_pos: 0x27,
  green_size: 0x28,
  green_pos: 0x29,
  blue_size: 0x2a,
  blue_pos: 0x2b,
  rsvd_size: 0x2c,
  rsvd_pos: 0x2d,
  capabilities: 0x36,
  ext_lfb_base: 0x3a,
  size: 0x40,
} as const;

/** A 32-bit x8r8g8b8 linear framebuffer as the kernel should see it. */
export interface LinearFramebuffer {
  /** Guest-physical base. */
  readonly guestAddr: number;
  /** Bytes of framebuffer memory. */
  readonly size: number;
  /** Pixels per line. */
  readonly width: number;
  /** Lines. */
  readonly height: number;
  /** Bytes per line. */
  readonly stride: number;
}

/**
 * Writes screen_info into a zero page for a 32-bit x8r8g8b8 framebuffer.
 *
 * @param mem guest RAM
 * @param zeroPage address of struct boot_params
 * @param fb the framebuffer
 * @example
 * ```ts
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { SCREEN_INFO, writeScreenInfo } from "./screen_info.ts";
 * const mem = GuestMemory.fromBuffer(new ArrayBuffer(0x8000));
 * writeScreenInfo(mem, 0x7000, {
 *   guestAddr: 0xfd000000, size: 640 * 480 * 4, width: 640, height: 480, stride: 2560,
 * });
 * console.log(mem.readU16(0x7000 + SCREEN_INFO.lfb_width)); // 640
 * ```
 */
export function writeScreenInfo(mem: GuestMemory, zeroPage: number, fb: LinearFramebuffer): void {
  const b = new Uint8Array(SCREEN_INFO.size);
  const v = new DataView(b.buffer);
  const s = SCREEN_INFO;
  b[s.orig_video_isVGA] = VIDEO_TYPE_VLFB;
  v.setUint16(s.lfb_width, fb.width, true);
  v.setUint16(s.lfb_height, fb.height, true);
  v.setUint16(s.lfb_depth, 32, true);
  v.setUint32(s.lfb_base, fb.guestAddr % 0x1_0000_0000, true);
  // VLFB sizes are in 64 KiB units, a historical VBE quirk the kernel undoes.
  v.setUint32(s.lfb_size, Math.ceil(fb.size / 0x10000), true);
  v.setUint16(s.lfb_linelength, fb.stride, true);
  b[s.red_size] = 8;
  b[s.red_pos] = 16;
  b[s.green_size] = 8;
  b[s.green_pos] = 8;
  b[s.blue_size] = 8;
  b[s.blue_pos] = 0;
  b[s.rsvd_size] = 8;
  b[s.rsvd_pos] = 24;
  const high = Math.floor(fb.guestAddr / 0x1_0000_0000);
  if (high > 0) {
    v.setUint32(s.capabilities, VIDEO_CAPABILITY_64BIT_BASE, true);
    v.setUint32(s.ext_lfb_base, high, true);
  }
  mem.write(zeroPage, b);
}
