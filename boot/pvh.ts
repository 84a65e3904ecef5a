/**
 * The PVH boot ABI's start-of-day structures (Xen's
 * public/arch-x86/hvm/start_info.h): struct hvm_start_info, the memory map
 * and the module list, written at fixed low addresses for a kernel entered
 * through its XEN_ELFNOTE_PHYS32_ENTRY in 32-bit protected mode with
 * EBX = the start info's address.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import type { E820Entry } from "./e820.ts";
import {
  PVH_INFO_START,
  PVH_MEMMAP_MAX_ENTRIES,
  PVH_MEMMAP_START,
  PVH_MODLIST_START,
} from "./layout.ts";

/** XEN_HVM_START_MAGIC_VALUE. */
export const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;

/** struct hvm_start_info offsets and size; pvh_test.ts checks them against Xen's header. */
export const HVM_START_INFO = {
  magic: 0,
  version: 4,
  flags: 8,
  nr_modules: 12,
  modlist_paddr: 16,
  cmdline_paddr: 24,
  rsdp_paddr: 32,
  memmap_paddr: 40,
  memmap_entries: 48,
  reserved: 52,
  size: 56,
} as const;

/** struct hvm_memmap_table_entry offsets and size. */
export const HVM_MEMMAP_TABLE_ENTRY = { addr: 0, size: 8, type: 16, reserved: 20, sizeof: 24 };

/** struct hvm_modlist_entry offsets and size. */
export const HVM_MODLIST_ENTRY = {
  paddr: 0,
  size: 8,
  cmdline_paddr: 16,
  reserved: 24,
  sizeof: 32,
};

/** What the PVH start info describes. */
export interface PvhStartInfoOptions {
  /** The memory map (e820 types, which PVH shares). */
  readonly e820: readonly E820Entry[];
  /** Address of the NUL-terminated command line, if any. */
  readonly cmdlineAddr?: number;
  /** Address of the ACPI RSDP, if any. */
  readonly rsdp?: number;
  /** The initrd, passed as the first module. */
  readonly initrd?: { readonly addr: number; readonly size: number };
}

/**
 * Writes hvm_start_info (version 1, with memory map) and its tables.
 *
 * @param mem guest RAM
 * @param options memory map, command line, RSDP, initrd
 * @returns the start info's address: EBX at the PVH entry
 * @example
 * ```ts
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { writePvhStartInfo } from "./pvh.ts";
 * const mem = GuestMemory.fromBuffer(new ArrayBuffer(1 << 20));
 * const ebx = writePvhStartInfo(mem, { e820: [{ addr: 0, size: 0x9fc00, type: 1 }] });
 * ```
 */
export function writePvhStartInfo(mem: GuestMemory, options: PvhStartInfoOptions): number {
  const map = options.e820;
  if (map.length > PVH_MEMMAP_MAX_ENTRIES) {
    throw new RangeError(`Too many memory map entries for PVH: ${map.length}`);
  }
  mem.fill(PVH_INFO_START, PVH_MODLIST_START + HVM_MODLIST_ENTRY.sizeof - PVH_INFO_START, 0);
  const base = PVH_INFO_START;
  mem.writeU32(base + HVM_START_INFO.magic, XEN_HVM_START_MAGIC_VALUE);
  mem.writeU32(base + HVM_START_INFO.version, 1);
  if (options.initrd) {
    const m = PVH_MODLIST_START;
    mem.writeU64(m + HVM_MODLIST_ENTRY.paddr, BigInt(options.initrd.addr));
    mem.writeU64(m + HVM_MODLIST_ENTRY.size, BigInt(options.initrd.size));
    mem.writeU32(base + HVM_START_INFO.nr_modules, 1);
    mem.writeU64(base + HVM_START_INFO.modlist_paddr, BigInt(m));
  }
  if (options.cmdlineAddr !== undefined) {
    mem.writeU64(base + HVM_START_INFO.cmdline_paddr, BigInt(options.cmdlineAddr));
  }
  if (options.rsdp !== undefined) {
    mem.writeU64(base + HVM_START_INFO.rsdp_paddr, BigInt(options.rsdp));
  }
  map.forEach((e, i) => {
    const p = PVH_MEMMAP_START + i * HVM_MEMMAP_TABLE_ENTRY.sizeof;
    mem.writeU64(p + HVM_MEMMAP_TABLE_ENTRY.addr, BigInt(e.addr));
    mem.writeU64(p + HVM_MEMMAP_TABLE_ENTRY.size, BigInt(e.size));
    mem.writeU32(p + HVM_MEMMAP_TABLE_ENTRY.type, e.type);
  });
  mem.writeU64(base + HVM_START_INFO.memmap_paddr, BigInt(PVH_MEMMAP_START));
  mem.writeU32(base + HVM_START_INFO.memmap_entries, map.length);
  return base;
}
