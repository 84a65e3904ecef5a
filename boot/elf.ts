/**
 * vmlinux (ELF64 x86-64) loading: PT_LOAD segments copied to their physical
 * addresses, and the PVH entry point from the Xen ELF note when the kernel
 * has one, so the VMM can choose between the 64-bit and the PVH entry.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import { KernelLoaderError } from "./kernel_loader_error.ts";
import { HIGH_MEMORY_START } from "./layout.ts";

/** Elf64_Ehdr / Elf64_Phdr offsets (elf.h), checked by elf_test.ts. */
export const ELF64 = {
  EI_CLASS: 4,
  EI_DATA: 5,
  e_type: 16,
  e_machine: 18,
  e_entry: 24,
  e_phoff: 32,
  e_phentsize: 54,
  e_phnum: 56,
  ehdrSize: 64,
  p_type: 0,
  p_offset: 8,
  p_vaddr: 16,
  p_paddr: 24,
  p_filesz: 32,
  p_memsz: 40,
  phdrSize: 56,
} as const;

/** ELFCLASS64. */
export const ELFCLASS64 = 2;
/** ELFDATA2LSB. */
export const ELFDATA2LSB = 1;
/** ET_EXEC. */
export const ET_EXEC = 2;
/** EM_X86_64. */
export const EM_X86_64 = 62;
/** PT_LOAD. */
export const PT_LOAD = 1;
/** PT_NOTE. */
export const PT_NOTE = 4;
/** XEN_ELFNOTE_PHYS32_ENTRY: the PVH 32-bit entry point's physical address. */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** Options for {@link loadElf}. */
export interface ElfOptions {
  /** Lowest address a segment may occupy (default 1 MiB: below are the boot structures). */
  readonly minAddr?: number;
}

/** Where {@link loadElf} put the kernel. */
export interface ElfLoadResult {
  /** The 64-bit entry point (physical). */
  readonly entry: number;
  /** The PVH entry point (32-bit protected mode, physical) from the Xen note, if present. */
  readonly pvhEntry?: number;
  /** Lowest loaded address. */
  readonly kernelAddr: number;
  /** End (exclusive) of the highest segment. */
  readonly kernelEnd: number;
}

function u64(v: DataView, off: number, what: string): number {
  const x = v.getBigUint64(off, true);
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new KernelLoaderError(`ELF ${what} 0x${x.toString(16)} is out of range`);
  }
  return Number(x);
}

interface Segment {
  type: number;
  offset: number;
  vaddr: bigint;
  paddr: number;
  filesz: number;
  memsz: number;
}

function segments(image: Uint8Array): { entry: bigint; segs: Segment[] } {
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (image.length < ELF64.ehdrSize) {
    throw new KernelLoaderError(`Not an ELF kernel: file is only ${image.length} bytes`);
  }
  if (image[0] !== 0x7f || image[1] !== 0x45 || image[2] !== 0x4c || image[3] !== 0x46) {
    throw new KernelLoaderError("Not an ELF kernel: no ELF magic");
  }
  if (image[ELF64.EI_CLASS] !== ELFCLASS64 || image[ELF64.EI_DATA] !== ELFDATA2LSB) {
    throw new KernelLoaderError("Not a 64-bit little-endian ELF kernel");
  }
  const machine = v.getUint16(ELF64.e_machine, true);
  if (machine !== EM_X86_64) {
    throw new KernelLoaderError(`ELF kernel is for machine ${machine}, not x86-64 (62)`);
  }
  const type = v.getUint16(ELF64.e_type, true);
  if (type !== ET_EXEC) {
    throw new KernelLoaderError(`ELF kernel has type ${type}, not an executable (ET_EXEC)`);
  }
  const phoff = u64(v, ELF64.e_phoff, "program header offset");
  const phentsize = v.getUint16(ELF64.e_phentsize, true);
  const phnum = v.getUint16(ELF64.e_phnum, true);
  if (phentsize !== ELF64.phdrSize) {
    throw new KernelLoaderError(`ELF program header size is ${phentsize}, not 56`);
  }
  if (phoff + phnum * phentsize > image.length) {
    throw new KernelLoaderError("ELF kernel truncated: program headers run past the end");
  }
  const segs: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    const seg: Segment = {
      type: v.getUint32(p + ELF64.p_type, true),
      offset: u64(v, p + ELF64.p_offset, "segment offset"),
      vaddr: v.getBigUint64(p + ELF64.p_vaddr, true),
      paddr: u64(v, p + ELF64.p_paddr, "segment address"),
      filesz: u64(v, p + ELF64.p_filesz, "segment file size"),
      memsz: u64(v, p + ELF64.p_memsz, "segment size"),
    };
    if (seg.type !== PT_LOAD && seg.type !== PT_NOTE) continue;
    if (seg.offset + seg.filesz > image.length) {
      throw new KernelLoaderError(
        `ELF kernel truncated: segment ${i} needs ${
          seg.offset + seg.filesz
        } bytes, file has ${image.length}`,
      );
    }
    if (seg.type === PT_LOAD && seg.filesz > seg.memsz) {
      throw new KernelLoaderError(`ELF segment ${i} has more file bytes than memory bytes`);
    }
    segs.push(seg);
  }
  return { entry: v.getBigUint64(ELF64.e_entry, true), segs };
}

/**
 * Finds the PVH entry point in an ELF kernel's notes (name "Xen", type
 * XEN_ELFNOTE_PHYS32_ENTRY, a 4- or 8-byte address).
 *
 * @param image the vmlinux file
 * @returns the physical PVH entry, or undefined if the kernel has none
 * @example
 * ```ts
 * import { findPvhEntry } from "./elf.ts";
 * try {
 *   findPvhEntry(new Uint8Array(64));
 * } catch (e) {
 *   console.log((e as Error).message);
 * }
 * ```
 */
export function findPvhEntry(image: Uint8Array): number | undefined {
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  for (const s of segments(image).segs) {
    if (s.type !== PT_NOTE) continue;
    let p = s.offset;
    const end = s.offset + s.filesz;
    while (p + 12 <= end) {
      const namesz = v.getUint32(p, true);
      const descsz = v.getUint32(p + 4, true);
      const type = v.getUint32(p + 8, true);
      const name = p + 12;
      const desc = name + align4(namesz);
      const next = desc + align4(descsz);
      if (namesz > end || descsz > end || next > end) break;
      if (
        type === XEN_ELFNOTE_PHYS32_ENTRY && namesz === 4 && image[name] === 0x58 &&
        image[name + 1] === 0x65 && image[name + 2] === 0x6e && image[name + 3] === 0
      ) {
        if (descsz === 4) return v.getUint32(desc, true);
        if (descsz === 8) return u64(v, desc, "PVH entry");
      }
      p = next;
    }
  }
  return undefined;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/**
 * Loads a vmlinux ELF64 kernel: each PT_LOAD segment's file bytes at its
 * p_paddr, the rest of p_memsz zeroed. Every segment is checked against the
 * file and guest RAM before anything is written.
 *
 * @param mem guest RAM
 * @param image the vmlinux file
 * @param options lowest allowed load address
 * @returns the entry points and the loaded range
 * @throws {KernelLoaderError} for non-ELF, non-x86-64, truncated files, or
 *   segments outside RAM
 * @example
 * ```ts ignore
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { loadElf } from "./elf.ts";
 * const mem = GuestMemory.allocate(256 << 20);
 * const k = loadElf(mem, Deno.readFileSync("vmlinux"));
 * console.log(k.entry.toString(16), k.pvhEntry?.toString(16));
 * ```
 */
export function loadElf(
  mem: GuestMemory,
  image: Uint8Array,
  options: ElfOptions = {},
): ElfLoadResult {
  const minAddr = options.minAddr ?? HIGH_MEMORY_START;
  const { entry: rawEntry, segs } = segments(image);
  const loads = segs.filter((s) => s.type === PT_LOAD && s.memsz > 0);
  if (loads.length === 0) throw new KernelLoaderError("ELF kernel has no loadable segments");
  let lo = Infinity;
  let hi = 0;
  for (const s of loads) {
    if (s.paddr < minAddr) {
      throw new KernelLoaderError(
        `ELF segment at 0x${s.paddr.toString(16)} is below 0x${minAddr.toString(16)}`,
      );
    }
    if (!mem.contains(s.paddr, s.memsz)) {
      throw new KernelLoaderError(
        `Kernel too big for guest RAM: segment 0x${s.paddr.toString(16)} (+0x${
          s.memsz.toString(16)
        }) is outside RAM`,
      );
    }
    lo = Math.min(lo, s.paddr);
    hi = Math.max(hi, s.paddr + s.memsz);
  }
  let entry = -1;
  for (const s of loads) {
    const e = rawEntry;
    if (e >= BigInt(s.paddr) && e < BigInt(s.paddr + s.memsz)) {
      entry = Number(e);
    } else if (e >= s.vaddr && e < s.vaddr + BigInt(s.memsz)) {
      entry = s.paddr + Number(e - s.vaddr);
    }
    if (entry >= 0) break;
  }
  if (entry < 0) {
    throw new KernelLoaderError(
      `ELF entry point 0x${rawEntry.toString(16)} is outside the loaded segments`,
    );
  }
  const pvhEntry = findPvhEntry(image);
  for (const s of loads) {
    mem.write(s.paddr, image.subarray(s.offset, s.offset + s.filesz));
    mem.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
  }
  return { entry, pvhEntry, kernelAddr: lo, kernelEnd: hi };
}
