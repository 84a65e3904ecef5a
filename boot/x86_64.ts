/**
 * The CPU state at kernel entry, as plain data: the 64-bit boot protocol's
 * long mode (identity-mapped page tables, GDT with __BOOT_CS 0x10 and
 * __BOOT_DS 0x18, RSI = zero page) and the PVH entry's flat 32-bit protected
 * mode (EBX = hvm_start_info). The GDT and page tables are written into guest
 * RAM at the addresses in layout.ts; the register values are returned in a
 * hypervisor-neutral shape for the vCPU backend to apply.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  BOOT_GDT_START,
  BOOT_STACK_POINTER,
  PD_COUNT,
  PD_START,
  PDPT_START,
  PML4_START,
} from "./layout.ts";

/** A segment register, in the fields KVM's struct kvm_segment has. */
export interface SegmentState {
  /** Linear base. */
  readonly base: number;
  /** Limit in bytes (already scaled by the granularity bit). */
  readonly limit: number;
  /** Selector. */
  readonly selector: number;
  /** Descriptor type (4 bits). */
  readonly type: number;
  /** P bit. */
  readonly present: number;
  /** Privilege level. */
  readonly dpl: number;
  /** D/B bit. */
  readonly db: number;
  /** S bit: 1 for code/data, 0 for system segments. */
  readonly s: number;
  /** L bit (64-bit code). */
  readonly l: number;
  /** G bit. */
  readonly g: number;
  /** AVL bit. */
  readonly avl: number;
  /** Whether the segment is unusable (a null selector). */
  readonly unusable: number;
}

/** A descriptor-table register. */
export interface DtableState {
  /** Linear base. */
  readonly base: number;
  /** Limit (bytes - 1). */
  readonly limit: number;
}

/** General-purpose registers at entry; those left out are zero. */
export interface BootRegs {
  /** Instruction pointer: the entry point. */
  readonly rip: number;
  /** Stack pointer. */
  readonly rsp: number;
  /** Frame pointer. */
  readonly rbp: number;
  /** The zero page for the 64-bit boot protocol, else 0. */
  readonly rsi: number;
  /** The hvm_start_info for PVH, else 0. */
  readonly rbx: number;
  /** Flags: bit 1 set, interrupts off. */
  readonly rflags: number;
}

/** Special registers at entry. */
export interface BootSregs {
  /** Code segment. */
  readonly cs: SegmentState;
  /** Data segment. */
  readonly ds: SegmentState;
  /** Extra segment. */
  readonly es: SegmentState;
  /** FS. */
  readonly fs: SegmentState;
  /** GS. */
  readonly gs: SegmentState;
  /** Stack segment. */
  readonly ss: SegmentState;
  /** Task register (an available-busy TSS, as VMX requires a usable one). */
  readonly tr: SegmentState;
  /** LDT (unusable). */
  readonly ldt: SegmentState;
  /** GDT register. */
  readonly gdt: DtableState;
  /** IDT register (empty: the kernel loads its own before enabling interrupts). */
  readonly idt: DtableState;
  /** CR0. */
  readonly cr0: number;
  /** CR3. */
  readonly cr3: number;
  /** CR4. */
  readonly cr4: number;
  /** EFER MSR. */
  readonly efer: number;
}

/** Everything the vCPU needs set before the first KVM_RUN. */
export interface CpuBootState {
  /** General-purpose registers. */
  readonly regs: BootRegs;
  /** Segment, control and descriptor-table registers. */
  readonly sregs: BootSregs;
}

/** CR0.PE: protected mode. */
export const X86_CR0_PE = 1 << 0;
/** CR0.ET: extension type (hard-wired 1). */
export const X86_CR0_ET = 1 << 4;
/** CR0.PG: paging. */
export const X86_CR0_PG = 0x8000_0000;
/** CR4.PAE: physical address extension, required for long mode. */
export const X86_CR4_PAE = 1 << 5;
/** EFER.LME: long mode enable. */
export const EFER_LME = 1 << 8;
/** EFER.LMA: long mode active. */
export const EFER_LMA = 1 << 10;
/** RFLAGS bit 1, always set. */
export const X86_EFLAGS_FIXED = 1 << 1;

/** GDT selectors: Linux's boot code expects __BOOT_CS 0x10 and __BOOT_DS 0x18. */
export const GDT_CODE32 = 0x08;
/** __BOOT_CS. */
export const GDT_CODE64 = 0x10;
/** __BOOT_DS. */
export const GDT_DATA = 0x18;
/** The TSS for TR. */
export const GDT_TSS = 0x20;

/** Page-table entry bits. */
const PTE_PRESENT = 1n;
const PTE_RW = 2n;
const PTE_PS = 0x80n;

/** The raw GDT: descriptor flags (type, S, DPL, P in bits 0-7; AVL, L, D/B, G in 12-15). */
const GDT_ENTRIES: readonly { flags: number; base: number; limit: number }[] = [
  { flags: 0, base: 0, limit: 0 }, // null
  { flags: 0xc09b, base: 0, limit: 0xfffff }, // 0x08: code32, read/exec, accessed, 4 GiB
  { flags: 0xa09b, base: 0, limit: 0xfffff }, // 0x10: code64 (L=1)
  { flags: 0xc093, base: 0, limit: 0xfffff }, // 0x18: data, read/write, accessed
  { flags: 0x008b, base: 0, limit: 0x67 }, // 0x20: busy 32-bit TSS, 104 bytes
];

/**
 * Encodes a GDT descriptor.
 *
 * @param flags access byte in bits 0-7, flags nibble in bits 12-15
 * @param base segment base
 * @param limit 20-bit limit
 * @returns the 8-byte descriptor
 * @example
 * ```ts
 * import { gdtEntry } from "./x86_64.ts";
 * console.log(gdtEntry(0xa09b, 0, 0xfffff).toString(16)); // af9b000000ffff
 * ```
 */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  const b = BigInt(base >>> 0);
  const l = BigInt(limit & 0xfffff);
  const fl = BigInt(flags & 0xf0ff);
  return ((b & 0xff000000n) << 32n) | (fl << 40n) | ((l & 0xf0000n) << 32n) |
    ((b & 0xffffffn) << 16n) | (l & 0xffffn);
}

/** The segment register state a descriptor loads. */
function segment(selector: number): SegmentState {
  const { flags, base, limit } = GDT_ENTRIES[selector >> 3];
  const g = (flags >> 15) & 1;
  return {
    base,
    limit: g ? limit * 4096 + 4095 : limit,
    selector,
    type: flags & 0xf,
    present: (flags >> 7) & 1,
    dpl: (flags >> 5) & 3,
    db: (flags >> 14) & 1,
    s: (flags >> 4) & 1,
    l: (flags >> 13) & 1,
    g,
    avl: (flags >> 12) & 1,
    unusable: 0,
  };
}

const LDT_UNUSABLE: SegmentState = {
  base: 0,
  limit: 0xffff,
  selector: 0,
  type: 2,
  present: 1,
  dpl: 0,
  db: 0,
  s: 0,
  l: 0,
  g: 0,
  avl: 0,
  unusable: 1,
};

/**
 * Writes the boot GDT at {@link BOOT_GDT_START}.
 *
 * @param mem guest RAM
 * @returns the GDTR value
 * @example
 * ```ts
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { writeGdt } from "./x86_64.ts";
 * console.log(writeGdt(GuestMemory.fromBuffer(new ArrayBuffer(1 << 20))));
 * ```
 */
export function writeGdt(mem: GuestMemory): DtableState {
  GDT_ENTRIES.forEach((e, i) => {
    mem.writeU64(BOOT_GDT_START + i * 8, gdtEntry(e.flags, e.base, e.limit));
  });
  return { base: BOOT_GDT_START, limit: GDT_ENTRIES.length * 8 - 1 };
}

/**
 * Writes identity page tables for the first PD_COUNT GiB with 2 MiB pages:
 * PML4 at {@link PML4_START}, one PDPT, PD_COUNT page directories.
 *
 * @param mem guest RAM
 * @returns CR3
 * @example
 * ```ts
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { writeIdentityPageTables } from "./x86_64.ts";
 * console.log(writeIdentityPageTables(GuestMemory.fromBuffer(new ArrayBuffer(1 << 20))));
 * ```
 */
export function writeIdentityPageTables(mem: GuestMemory): number {
  mem.fill(PML4_START, PD_START + PD_COUNT * 0x1000 - PML4_START, 0);
  mem.writeU64(PML4_START, BigInt(PDPT_START) | PTE_PRESENT | PTE_RW);
  for (let i = 0; i < PD_COUNT; i++) {
    const pd = PD_START + i * 0x1000;
    mem.writeU64(PDPT_START + i * 8, BigInt(pd) | PTE_PRESENT | PTE_RW);
    for (let j = 0; j < 512; j++) {
      const addr = BigInt(i * 512 + j) << 21n;
      mem.writeU64(pd + j * 8, addr | PTE_PRESENT | PTE_RW | PTE_PS);
    }
  }
  return PML4_START;
}

/** Options for {@link setupLongMode}. */
export interface LongModeOptions {
  /** The 64-bit entry point (bzImage load address + 0x200, or the vmlinux entry). */
  readonly entry: number;
  /** The zero page address, passed in RSI. */
  readonly bootParams: number;
  /** RBX (default 0): the relocation stub's parameters when the entry is that stub. */
  readonly rbx?: number;
}

/**
 * Prepares the 64-bit boot protocol entry: writes the GDT and identity page
 * tables (0 .. 4 GiB) and returns long-mode register state with CS = 0x10,
 * data segments 0x18, RSI = the zero page and interrupts off.
 *
 * @param mem guest RAM
 * @param options entry point and zero page
 * @returns the registers to set
 * @example
 * ```ts
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { setupLongMode } from "./x86_64.ts";
 * const mem = GuestMemory.fromBuffer(new ArrayBuffer(2 << 20));
 * const s = setupLongMode(mem, { entry: 0x1000200, bootParams: 0x7000 });
 * console.log(s.regs.rip.toString(16), s.sregs.cs.selector);
 * ```
 */
export function setupLongMode(mem: GuestMemory, options: LongModeOptions): CpuBootState {
  const gdt = writeGdt(mem);
  const cr3 = writeIdentityPageTables(mem);
  const data = segment(GDT_DATA);
  return {
    regs: {
      rip: options.entry,
      rsp: BOOT_STACK_POINTER,
      rbp: BOOT_STACK_POINTER,
      rsi: options.bootParams,
      rbx: options.rbx ?? 0,
      rflags: X86_EFLAGS_FIXED,
    },
    sregs: {
      cs: segment(GDT_CODE64),
      ds: data,
      es: data,
      fs: data,
      gs: data,
      ss: data,
      tr: segment(GDT_TSS),
      ldt: LDT_UNUSABLE,
      gdt,
      idt: { base: 0, limit: 0 },
      cr0: X86_CR0_PE | X86_CR0_ET | X86_CR0_PG,
      cr3,
      cr4: X86_CR4_PAE,
      efer: EFER_LME | EFER_LMA,
    },
  };
}

/** Options for {@link setupPvh}. */
export interface PvhOptions {
  /** The PVH entry (XEN_ELFNOTE_PHYS32_ENTRY). */
  readonly entry: number;
  /** The hvm_start_info address, passed in EBX. */
  readonly startInfo: number;
}

/**
 * Prepares the PVH entry: flat 32-bit protected mode, paging off, CS = 0x08
 * (4 GiB read/execute), data segments 0x18, TR a 0x67-byte TSS, EBX = the
 * hvm_start_info (see pvh.ts), interrupts off.
 *
 * @param mem guest RAM
 * @param options entry point and start info
 * @returns the registers to set
 * @example
 * ```ts
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { setupPvh } from "./x86_64.ts";
 * const mem = GuestMemory.fromBuffer(new ArrayBuffer(1 << 20));
 * const s = setupPvh(mem, { entry: 0x1000000, startInfo: 0x6000 });
 * console.log(s.regs.rbx.toString(16), s.sregs.cr0);
 * ```
 */
export function setupPvh(mem: GuestMemory, options: PvhOptions): CpuBootState {
  if (options.entry >= 0x1_0000_0000 || options.startInfo >= 0x1_0000_0000) {
    throw new RangeError("PVH entry and start info must lie below 4 GiB");
  }
  const gdt = writeGdt(mem);
  const data = segment(GDT_DATA);
  return {
    regs: {
      rip: options.entry,
      rsp: 0,
      rbp: 0,
      rsi: 0,
      rbx: options.startInfo,
      rflags: X86_EFLAGS_FIXED,
    },
    sregs: {
      cs: segment(GDT_CODE32),
      ds: data,
      es: data,
      fs: data,
      gs: data,
      ss: data,
      tr: segment(GDT_TSS),
      ldt: LDT_UNUSABLE,
      gdt,
      idt: { base: 0, limit: 0 },
      cr0: X86_CR0_PE | X86_CR0_ET,
      cr3: 0,
      cr4: 0,
      efer: 0,
    },
  };
}
