/**
 * The boot-time guest-physical memory layout, in one place.
 *
 * ```
 * 0x0000_0000 .. 0x0000_04ff  real-mode IVT and BIOS data area (left zero)
 * 0x0000_0500 .. 0x0000_052f  GDT: null, code32 0x08, code64 0x10, data 0x18, TSS 0x20
 * 0x0000_1000 .. 0x0000_1147  relocation stub and its parameters (relocation_stub.ts; an
 *                             unpacked bzImage moved virtually by KASLR)
 * 0x0000_6000 .. 0x0000_603f  PVH: struct hvm_start_info
 * 0x0000_6040 .. 0x0000_6c3f  PVH: hvm_memmap_table_entry[] (up to 128 entries)
 * 0x0000_6c80 .. 0x0000_6c9f  PVH: hvm_modlist_entry[] (the initrd)
 * 0x0000_7000 .. 0x0000_7fff  zero page (struct boot_params)
 * 0x0000_8000 .. 0x0000_8fef  boot stack, growing down from 0x8ff0
 * 0x0000_9000 .. 0x0000_9fff  PML4
 * 0x0000_a000 .. 0x0000_afff  PDPT
 * 0x0000_b000 .. 0x0000_efff  4 page directories: 2 MiB pages identity-mapping 0 .. 4 GiB
 * 0x0002_0000 .. 0x0002_ffff  kernel command line (NUL-terminated)
 * 0x0009_fc00 .. 0x0009_ffff  EBDA (reserved in e820)
 * 0x000a_0000 .. 0x000d_ffff  VGA / option ROM hole (not in e820)
 * 0x000e_0000 .. 0x000f_ffff  ACPI tables, RSDP first (reserved in e820; Linux scans it)
 * 0x0010_0000 ..              kernel (bzImage protected-mode code / vmlinux), then initrd at
 *                             the top of low RAM
 * 0xc000_0000 .. 0xffff_ffff  32-bit PCI hole: MMIO, no RAM (IOAPIC 0xfec00000, LAPIC 0xfee00000)
 * 0x1_0000_0000 ..            RAM above 4 GiB
 * ```
 *
 * @module
 */

/** GDT: 5 descriptors of 8 bytes. */
export const BOOT_GDT_START = 0x500;
/** hvm_start_info for the PVH entry. */
export const PVH_INFO_START = 0x6000;
/** hvm_memmap_table_entry array for the PVH entry. */
export const PVH_MEMMAP_START = 0x6040;
/** Entries that fit between PVH_MEMMAP_START and PVH_MODLIST_START. */
export const PVH_MEMMAP_MAX_ENTRIES = 128;
/** hvm_modlist_entry array for the PVH entry. */
export const PVH_MODLIST_START = 0x6c80;
/** struct boot_params, the zero page. */
export const ZERO_PAGE_START = 0x7000;
/** Initial RSP (and RBP); the stack grows down into 0x8000.. */
export const BOOT_STACK_POINTER = 0x8ff0;
/** Top-level page table. */
export const PML4_START = 0x9000;
/** Page-directory-pointer table. */
export const PDPT_START = 0xa000;
/** First of the page directories. */
export const PD_START = 0xb000;
/** Page directories: one per GiB identity-mapped. */
export const PD_COUNT = 4;
/** Kernel command line. */
export const CMDLINE_START = 0x20000;
/** Bytes reserved for the command line (including its NUL). */
export const CMDLINE_MAX_SIZE = 0x10000;
/** Start of the EBDA, where usable low RAM ends. */
export const EBDA_START = 0x9fc00;
/** Start of the legacy VGA/ROM hole. */
export const ISA_HOLE_START = 0xa0000;
/** Where the ACPI tables live: the BIOS area Linux scans for the RSDP. */
export const ACPI_AREA_START = 0xe0000;
/** End (exclusive) of the ACPI area and of the legacy hole. */
export const ACPI_AREA_END = 0x100000;
/** 1 MiB: the bzImage protected-mode load address and start of high memory. */
export const HIGH_MEMORY_START = 0x100000;
/** Start of the 32-bit PCI hole (RAM above it moves to 4 GiB). */
export const PCI_HOLE32_START = 0xc000_0000;
/** 4 GiB. */
export const FOUR_GIB = 0x1_0000_0000;
