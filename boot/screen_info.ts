/**
 * struct screen_info (include/uapi/linux/screen_info.h) at the start of the
 * zero page: how a boot loader tells Linux about a linear framebuffer it set
 * up. We announce ours as an EFI GOP framebuffer (VIDEO_TYPE_EFI): Linux's
 * sysfb then registers an "efi-framebuffer" platform device that the
 * built-in efifb driver drives (Debian's generic and cloud kernels both have
 * CONFIG_FB_EFI=y; the generic one's vesafb would want VIDEO_TYPE_VLFB and
 * 64 KiB units), with fbcon on top, so `console=tty0` and /dev/fb0 appear
 * with no modules loaded. efifb needs no EFI boot: it reads only these fields.
 *
 * @module
 */
import type { StructField } from "./boot_params.ts";
import { setField } from "./boot_params.ts";

function f(offset: number, size: number): StructField {
  return { offset, size };
}

/** struct screen_info fields we write (offsets from the zero page start). */
export const SCREEN_INFO = {
  orig_video_isVGA: f(0x0f, 1),
  lfb_width: f(0x12, 2),
  lfb_height: f(0x14, 2),
  lfb_depth: f(0x16, 2),
  lfb_base: f(0x18, 4),
  lfb_size: f(0x1c, 4),
  lfb_linelength: f(0x24, 2),
  red_size: f(0x26, 1),
  red_pos: f(0x27, 1),
  green_size: f(0x28, 1),
  green_pos: f(0x29, 1),
  blue_size: f(0x2a, 1),
  blue_pos: f(0x2b, 1),
  rsvd_size: f(0x2c, 1),
  rsvd_pos: f(0x2d, 1),
  pages: f(0x32, 2),
  capabilities: f(0x36, 4),
  ext_lfb_base: f(0x3a, 4),
} as const;

/** sizeof(struct screen_info). */
export const SCREEN_INFO_SIZE = 0x40;
/** orig_video_isVGA: EFI GOP linear framebuffer. */
export const VIDEO_TYPE_EFI = 0x70;
/** orig_video_isVGA: VESA VGA in graphic mode. */
export const VIDEO_TYPE_VLFB = 0x23;
/** capabilities: ext_lfb_base holds the high 32 bits of the base. */
export const VIDEO_CAPABILITY_64BIT_BASE = 1 << 1;

/** A 32-bpp x8r8g8b8 linear framebuffer as the guest sees it. */
export interface LinearFramebufferInfo {
  /** Guest-physical base. */
  base: number;
  /** Bytes of video memory. */
  size: number;
  /** Visible width in pixels. */
  width: number;
  /** Visible height in pixels. */
  height: number;
  /** Bytes per line. */
  stride: number;
}

/**
 * Fills screen_info in a zero page for a 32-bpp x8r8g8b8 framebuffer.
 *
 * @param view the zero page (or bytes holding it)
 * @param base offset of the zero page in view
 * @param fb the framebuffer
 * @example
 * ```ts
 * import { writeScreenInfo } from "./screen_info.ts";
 * const page = new DataView(new ArrayBuffer(4096));
 * writeScreenInfo(page, 0, { base: 0xfd000000, size: 16 << 20, width: 1024, height: 768, stride: 4096 });
 * ```
 */
export function writeScreenInfo(view: DataView, base: number, fb: LinearFramebufferInfo): void {
  if (fb.stride < fb.width * 4 || fb.stride * fb.height > fb.size) {
    throw new RangeError(
      `Framebuffer ${fb.width}x${fb.height} stride ${fb.stride} does not fit ${fb.size} bytes`,
    );
  }
  for (let i = 0; i < SCREEN_INFO_SIZE; i++) view.setUint8(base + i, 0);
  const s = SCREEN_INFO;
  const set = (field: StructField, v: number) => setField(view, base, field, v);
  set(s.orig_video_isVGA, VIDEO_TYPE_EFI);
  set(s.lfb_width, fb.width);
  set(s.lfb_height, fb.height);
  set(s.lfb_depth, 32);
  set(s.lfb_base, fb.base % 2 ** 32);
  set(s.lfb_size, fb.size);
  set(s.lfb_linelength, fb.stride);
  set(s.red_size, 8);
  set(s.red_pos, 16);
  set(s.green_size, 8);
  set(s.green_pos, 8);
  set(s.blue_size, 8);
  set(s.blue_pos, 0);
  set(s.rsvd_size, 8);
  set(s.rsvd_pos, 24);
  set(s.pages, 1);
  if (fb.base >= 2 ** 32) {
    set(s.capabilities, VIDEO_CAPABILITY_64BIT_BASE);
    set(s.ext_lfb_base, Math.floor(fb.base / 2 ** 32));
  }
}
