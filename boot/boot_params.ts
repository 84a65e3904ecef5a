/**
 * The x86 boot protocol structures (asm/bootparam.h), declared once: struct
 * boot_params (the "zero page"), the setup_header inside it and the e820
 * entry. boot_params_test.ts checks every field here against the C header.
 *
 * The setup_header sits at the same offset (0x1f1) in a bzImage file and in
 * boot_params, so {@link SETUP_HEADER} offsets index both.
 *
 * @module
 */

/** A field of a packed C struct: byte offset from the struct start and width. */
export interface StructField {
  /** Byte offset. */
  readonly offset: number;
  /** Width in bytes (1, 2, 4 or 8 for integers). */
  readonly size: number;
}

function f(offset: number, size: number): StructField {
  return { offset, size };
}

/** sizeof(struct boot_params): one page. */
export const BOOT_PARAMS_SIZE = 0x1000;

/** Offset of struct setup_header in boot_params and in a bzImage file. */
export const SETUP_HEADER_OFFSET = 0x1f1;

/** sizeof(struct setup_header) as of protocol 2.15. */
export const SETUP_HEADER_SIZE = 0x7b;

/** E820_MAX_ENTRIES_ZEROPAGE: e820 entries the zero page holds. */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

/** sizeof(struct boot_e820_entry). */
export const BOOT_E820_ENTRY_SIZE = 20;

/** struct boot_e820_entry fields, relative to the entry. */
export const BOOT_E820_ENTRY = {
  addr: f(0, 8),
  size: f(8, 8),
  type: f(16, 4),
} as const;

/** struct boot_params fields used by the loaders (offsets from the zero page start). */
export const BOOT_PARAMS = {
  acpi_rsdp_addr: f(0x070, 8),
  ext_ramdisk_image: f(0x0c0, 4),
  ext_ramdisk_size: f(0x0c4, 4),
  ext_cmd_line_ptr: f(0x0c8, 4),
  e820_entries: f(0x1e8, 1),
  sentinel: f(0x1ef, 1),
  hdr: f(SETUP_HEADER_OFFSET, SETUP_HEADER_SIZE),
  e820_table: f(0x2d0, E820_MAX_ENTRIES_ZEROPAGE * BOOT_E820_ENTRY_SIZE),
} as const;

/** struct setup_header fields, as offsets from the start of boot_params (or the image). */
export const SETUP_HEADER = {
  setup_sects: f(0x1f1, 1),
  root_flags: f(0x1f2, 2),
  syssize: f(0x1f4, 4),
  ram_size: f(0x1f8, 2),
  vid_mode: f(0x1fa, 2),
  root_dev: f(0x1fc, 2),
  boot_flag: f(0x1fe, 2),
  jump: f(0x200, 2),
  header: f(0x202, 4),
  version: f(0x206, 2),
  realmode_swtch: f(0x208, 4),
  start_sys_seg: f(0x20c, 2),
  kernel_version: f(0x20e, 2),
  type_of_loader: f(0x210, 1),
  loadflags: f(0x211, 1),
  setup_move_size: f(0x212, 2),
  code32_start: f(0x214, 4),
  ramdisk_image: f(0x218, 4),
  ramdisk_size: f(0x21c, 4),
  bootsect_kludge: f(0x220, 4),
  heap_end_ptr: f(0x224, 2),
  ext_loader_ver: f(0x226, 1),
  ext_loader_type: f(0x227, 1),
  cmd_line_ptr: f(0x228, 4),
  initrd_addr_max: f(0x22c, 4),
  kernel_alignment: f(0x230, 4),
  relocatable_kernel: f(0x234, 1),
  min_alignment: f(0x235, 1),
  xloadflags: f(0x236, 2),
  cmdline_size: f(0x238, 4),
  hardware_subarch: f(0x23c, 4),
  hardware_subarch_data: f(0x240, 8),
  payload_offset: f(0x248, 4),
  payload_length: f(0x24c, 4),
  setup_data: f(0x250, 8),
  pref_address: f(0x258, 8),
  init_size: f(0x260, 4),
  handover_offset: f(0x264, 4),
  kernel_info_offset: f(0x268, 4),
} as const;

/** boot_flag value: the 0xAA55 boot-sector signature. */
export const BOOT_FLAG_MAGIC = 0xaa55;
/** header value: "HdrS" read as a little-endian u32. */
export const HDRS_MAGIC = 0x53726448;

/** loadflags: the protected-mode code is loaded at 0x100000 (bzImage). */
export const LOADED_HIGH = 1 << 0;
/** loadflags: the loader filled in heap_end_ptr. */
export const CAN_USE_HEAP = 1 << 7;
/** xloadflags: the kernel has the 64-bit entry point at +0x200. */
export const XLF_KERNEL_64 = 1 << 0;
/** xloadflags: kernel, boot_params, cmdline and initrd may sit above 4 GiB. */
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;

/** e820 type: usable RAM. */
export const E820_RAM = 1;
/** e820 type: reserved. */
export const E820_RESERVED = 2;
/** e820 type: ACPI tables (reclaimable after parsing). */
export const E820_ACPI = 3;
/** e820 type: ACPI NVS. */
export const E820_NVS = 4;
/** e820 type: unusable. */
export const E820_UNUSABLE = 5;

/**
 * Reads an unsigned little-endian field.
 *
 * @param view bytes holding the struct
 * @param base offset of the struct in view
 * @param field the field
 * @returns its value (8-byte fields must fit in a safe integer)
 * @example
 * ```ts
 * import { getField, SETUP_HEADER } from "./boot_params.ts";
 * const v = new DataView(new ArrayBuffer(4096));
 * console.log(getField(v, 0, SETUP_HEADER.version));
 * ```
 */
export function getField(view: DataView, base: number, field: StructField): number {
  const o = base + field.offset;
  switch (field.size) {
    case 1:
      return view.getUint8(o);
    case 2:
      return view.getUint16(o, true);
    case 4:
      return view.getUint32(o, true);
    case 8: {
      const v = view.getBigUint64(o, true);
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new RangeError(`Field value too large: 0x${v.toString(16)}`);
      }
      return Number(v);
    }
    default:
      throw new TypeError(`Field of ${field.size} bytes is not an integer`);
  }
}

/**
 * Writes an unsigned little-endian field, checking the value fits.
 *
 * @param view bytes holding the struct
 * @param base offset of the struct in view
 * @param field the field
 * @param value the value
 * @example
 * ```ts
 * import { BOOT_PARAMS, setField } from "./boot_params.ts";
 * const v = new DataView(new ArrayBuffer(4096));
 * setField(v, 0, BOOT_PARAMS.e820_entries, 3);
 * ```
 */
export function setField(view: DataView, base: number, field: StructField, value: number): void {
  const o = base + field.offset;
  const max = field.size === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * field.size) - 1;
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new RangeError(`Value ${value} does not fit a ${field.size}-byte field`);
  }
  switch (field.size) {
    case 1:
      view.setUint8(o, value);
      break;
    case 2:
      view.setUint16(o, value, true);
      break;
    case 4:
      view.setUint32(o, value, true);
      break;
    case 8:
      view.setBigUint64(o, BigInt(value), true);
      break;
    default:
      throw new TypeError(`Field of ${field.size} bytes is not an integer`);
  }
}
