/**
 * A bzImage's kernel, unpacked on the host: what the kernel's own
 * decompressor (arch/x86/boot/compressed/misc.c) does in the guest at every
 * boot, done once by the VMM so that a cached copy can skip it.
 *
 * The compressed payload is `vmlinux.bin` (the kernel ELF, stripped) with the
 * relocation table that `arch/x86/tools/relocs` made appended
 * (`vmlinux.relocs`), and its unpacked size appended as 32 bits after the
 * compressed bytes. Loading it as the decompressor does:
 *
 * 1. pick where it runs: a physical address (2 MiB aligned) and a virtual
 *    offset, both random for KASLR ({@link chooseKaslr});
 * 2. copy each PT_LOAD segment to `base + (p_paddr - LOAD_PHYSICAL_ADDR)`
 *    and zero the rest of its memory size ({@link placeKernel});
 * 3. when the virtual address moved, apply the relocations
 *    ({@link relocateKernel}): working backwards from the end, 32-bit
 *    entries to add the offset to, inverse 32-bit entries to subtract it
 *    from, 64-bit entries to add it to, each list ended by a zero;
 * 4. enter at `startup_64` (`base + e_entry - LOAD_PHYSICAL_ADDR`) with the
 *    64-bit boot protocol's state, `KASLR_FLAG` set in loadflags when
 *    randomized (the kernel then randomizes its memory regions too).
 *
 * @module
 */
import { KernelLoaderError } from "./kernel_loader_error.ts";
import type { BzImageHeader } from "./bzimage.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import { DECOMPRESS_FORMATS, type DecompressFormat } from "../sys/decompress.ts";

/** The start of the kernel's virtual mapping (`__START_KERNEL_map`). */
export const START_KERNEL_MAP = 0xffff_ffff_8000_0000n;
/**
 * How far above `__START_KERNEL_map` the kernel may run: 512 MiB, the
 * kernel's `KERNEL_IMAGE_SIZE` without CONFIG_RANDOMIZE_BASE, which the
 * header cannot tell (with it, 1 GiB: the guest's own decompressor would use
 * one bit more of randomness).
 */
export const KERNEL_IMAGE_SIZE = 512 << 20;
/** `loadflags` bit the decompressor sets when KASLR is on (bootparam.h). */
export const KASLR_FLAG = 1 << 1;

const PT_LOAD = 1;

/** Magic numbers at the start of each compressed payload format. */
const MAGICS: { format: string; bytes: number[] }[] = [
  { format: "xz", bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { format: "zstd", bytes: [0x28, 0xb5, 0x2f, 0xfd] },
  { format: "gzip", bytes: [0x1f, 0x8b] },
  { format: "lz4", bytes: [0x02, 0x21, 0x4c, 0x18] },
  { format: "lzo", bytes: [0x89, 0x4c, 0x5a, 0x4f] },
  { format: "bzip2", bytes: [0x42, 0x5a, 0x68] },
  { format: "lzma", bytes: [0x5d, 0x00, 0x00] },
];

/** A bzImage's compressed kernel. */
export interface KernelPayload {
  /** Its format: "xz", "zstd", "gzip", "lz4", "lzo", "bzip2", "lzma" or "unknown". */
  readonly format: string;
  /** The compressed bytes, without the size after them. */
  readonly data: Uint8Array;
  /** Bytes it unpacks to (the ELF and its relocations). */
  readonly unpackedSize: number;
}

/**
 * The compressed payload of a bzImage (boot protocol 2.08 and later).
 *
 * @param image the bzImage
 * @param header its parsed header
 * @returns the payload, or undefined when the header names none
 * @example
 * ```ts ignore
 * const p = kernelPayload(image, parseBzImage(image));
 * console.log(p?.format, p?.unpackedSize);
 * ```
 */
export function kernelPayload(image: Uint8Array, header: BzImageHeader): KernelPayload | undefined {
  if (header.payloadLength < 8) return undefined;
  const start = header.setupSize + header.payloadOffset;
  const all = image.subarray(start, start + header.payloadLength);
  const unpackedSize = new DataView(all.buffer, all.byteOffset + all.length - 4, 4)
    .getUint32(0, true);
  const m = MAGICS.find((m) => m.bytes.every((b, i) => all[i] === b));
  return { format: m?.format ?? "unknown", data: all.subarray(0, all.length - 4), unpackedSize };
}

/**
 * Whether the VMM can unpack this format itself.
 *
 * @param format a {@link KernelPayload} format
 * @returns true for the formats sys/decompress.ts undoes
 */
export function unpackableFormat(format: string): format is DecompressFormat {
  return (DECOMPRESS_FORMATS as readonly string[]).includes(format);
}

/** One PT_LOAD segment of the kernel ELF. */
export interface KernelSegment {
  /** Offset in the unpacked bytes. */
  readonly offset: number;
  /** Physical address it was linked for. */
  readonly paddr: number;
  /** Bytes in the file. */
  readonly fileSize: number;
  /** Bytes in memory (the rest is zero). */
  readonly memSize: number;
}

/** The unpacked kernel's ELF layout. */
export interface KernelLayout {
  /** Physical entry address as linked (`startup_64`). */
  readonly entry: number;
  /** Its PT_LOAD segments. */
  readonly segments: readonly KernelSegment[];
  /** The lowest physical address linked (LOAD_PHYSICAL_ADDR). */
  readonly linkedBase: number;
  /** Bytes from linkedBase to the end of the last segment in memory. */
  readonly memSize: number;
  /** Where the ELF ends and the relocation table starts in the unpacked bytes. */
  readonly elfEnd: number;
}

/** The relocation table: kernel virtual addresses (low 32 bits, sign-extended). */
export interface KernelRelocations {
  /** Places to add the virtual offset to, as 32 bits. */
  readonly relocs32: Int32Array;
  /** Places to subtract it from, as 32 bits. */
  readonly relocsInverse32: Int32Array;
  /** Places to add it to, as 64 bits. */
  readonly relocs64: Int32Array;
}

function bad(what: string): never {
  throw new KernelLoaderError(`Unpacked kernel is malformed: ${what}`);
}

/**
 * Reads the ELF layout of an unpacked payload from its first bytes.
 *
 * @param head the unpacked payload's start: at least its ELF and program headers
 * @param length the unpacked payload's whole length
 * @returns its layout
 * @throws {KernelLoaderError} when it is not an x86-64 kernel ELF that fits `length`
 * @example
 * ```ts ignore
 * const k = parseKernelLayout(bytes, bytes.length);
 * console.log(k.entry.toString(16));
 * ```
 */
export function parseKernelLayout(head: Uint8Array, length: number): KernelLayout {
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.length < 64 || v.getUint32(0, true) !== 0x464c457f) bad("no ELF header");
  if (head[4] !== 2 || head[5] !== 1) bad("not a little-endian 64-bit ELF");
  if (v.getUint16(18, true) !== 62) bad("not an x86-64 ELF");
  const entry = Number(v.getBigUint64(24, true));
  const phoff = Number(v.getBigUint64(32, true));
  const shoff = Number(v.getBigUint64(40, true));
  const phentsize = v.getUint16(54, true);
  const phnum = v.getUint16(56, true);
  const shentsize = v.getUint16(58, true);
  const shnum = v.getUint16(60, true);
  if (phentsize < 56 || phoff + phnum * phentsize > head.length) bad("program headers");
  const segments: KernelSegment[] = [];
  let elfEnd = Math.max(64, phoff + phnum * phentsize, shoff + shnum * shentsize);
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (v.getUint32(p, true) !== PT_LOAD) continue;
    const offset = Number(v.getBigUint64(p + 8, true));
    const paddr = Number(v.getBigUint64(p + 24, true));
    const fileSize = Number(v.getBigUint64(p + 32, true));
    const memSize = Number(v.getBigUint64(p + 40, true));
    if (offset + fileSize > length || fileSize > memSize) bad(`segment ${i}'s sizes`);
    if (paddr + memSize > 0x1_0000_0000) bad(`segment ${i} above 4 GiB`);
    segments.push({ offset, paddr, fileSize, memSize });
    elfEnd = Math.max(elfEnd, offset + fileSize);
  }
  if (segments.length === 0) bad("no PT_LOAD segment");
  const linkedBase = Math.min(...segments.map((s) => s.paddr));
  const end = Math.max(...segments.map((s) => s.paddr + s.memSize));
  if (entry < linkedBase || entry >= end) bad("entry outside its segments");
  if (elfEnd > length || (length - elfEnd) % 4 !== 0) bad("relocation table size");
  return { entry, segments, linkedBase, memSize: end - linkedBase, elfEnd };
}

/**
 * Reads the relocation table appended to the ELF, backwards from its end as
 * the decompressor does: 32-bit entries, a zero, inverse 32-bit entries, a
 * zero, 64-bit entries, a zero.
 *
 * @param table the bytes from the ELF's end to the payload's end
 * @returns the three lists
 * @throws {KernelLoaderError} when a list has no zero end
 */
export function parseKernelRelocations(table: Uint8Array): KernelRelocations {
  const v = new DataView(table.buffer, table.byteOffset, table.byteLength);
  let at = (table.length >> 2) - 1;
  const list = () => {
    const start = at;
    while (at >= 0 && v.getInt32(at * 4, true) !== 0) at--;
    if (at < 0) bad("relocation list without its zero end");
    const out = new Int32Array(start - at);
    for (let i = 0; i < out.length; i++) out[i] = v.getInt32((start - i) * 4, true);
    at--;
    return out;
  };
  const relocs32 = list();
  const relocsInverse32 = list();
  const relocs64 = list();
  return { relocs32, relocsInverse32, relocs64 };
}

/** An unpacked kernel as a loader takes it (vm/unpacked_kernel_source.ts makes one). */
export interface UnpackedKernelBytes {
  /** The ELF layout. */
  readonly layout: KernelLayout;
  /** The relocation table. */
  readonly relocations: KernelRelocations;
  /** Bytes the payload unpacked to. */
  readonly unpackedSize: number;
  /** Copies `dest.length` bytes of the unpacked payload from `offset` into `dest`. */
  copy(dest: Uint8Array, offset: number): void;
  /**
   * Page-aligned ranges of the payload known to hold only zeros (sorted,
   * apart): the loader zeroes them in guest RAM instead of copying them.
   * A Debian kernel's last segment is ~25 of its 27 MiB zeros (.bss, .brk,
   * .init.scratch), 40% of what it would copy.
   */
  readonly zeroRuns?: readonly ZeroRun[];
}

/** A range of the unpacked payload, [start, end), that holds only zeros. */
export interface ZeroRun {
  /** First byte (page-aligned). */
  readonly start: number;
  /** One past the last byte (page-aligned). */
  readonly end: number;
}

/** The shortest run {@link zeroRunsOf} reports: shorter ones cost more to list than to copy. */
export const MIN_ZERO_RUN = 64 << 10;

/**
 * The page-aligned runs of zeros in `bytes` of at least {@link MIN_ZERO_RUN}.
 *
 * @param bytes the unpacked payload (its start page-aligned in the payload)
 * @returns the runs, in order
 * @example
 * ```ts
 * import { zeroRunsOf } from "./unpacked_kernel.ts";
 * zeroRunsOf(new Uint8Array(1 << 20)); // [{ start: 0, end: 1048576 }]
 * ```
 */
export function zeroRunsOf(bytes: Uint8Array): ZeroRun[] {
  const page = 4096;
  const runs: ZeroRun[] = [];
  const pages = Math.floor(bytes.length / page);
  // Words, not bytes: a page with data usually stops the scan at its first word.
  const aligned = bytes.byteOffset % 4 === 0;
  const words = aligned
    ? new Uint32Array(bytes.buffer, bytes.byteOffset, pages * (page / 4))
    : undefined;
  const zeroPage = (p: number) => {
    if (words) {
      for (let i = p * (page / 4), end = i + page / 4; i < end; i++) {
        if (words[i] !== 0) return false;
      }
      return true;
    }
    for (let i = p * page, end = i + page; i < end; i++) if (bytes[i] !== 0) return false;
    return true;
  };
  let start = -1;
  for (let p = 0; p <= pages; p++) {
    const zero = p < pages && zeroPage(p);
    if (zero && start < 0) start = p;
    if (!zero && start >= 0) {
      if ((p - start) * page >= MIN_ZERO_RUN) runs.push({ start: start * page, end: p * page });
      start = -1;
    }
  }
  return runs;
}

/**
 * Writes `size` bytes of the unpacked payload from `offset` into guest RAM
 * at `dest`: its zero runs zeroed (GuestMemory's `zero`, which leaves fresh
 * RAM untouched), the rest copied.
 *
 * @param mem guest RAM
 * @param k the unpacked kernel
 * @param dest guest address
 * @param offset payload offset
 * @param size bytes
 * @example
 * ```ts ignore
 * placePayload(mem, unpacked, base + seg.paddr - layout.linkedBase, seg.offset, seg.fileSize);
 * ```
 */
export function placePayload(
  mem: GuestMemory,
  k: UnpackedKernelBytes,
  dest: number,
  offset: number,
  size: number,
): void {
  let at = offset;
  const end = offset + size;
  const copyTo = (until: number) => {
    if (until > at) k.copy(mem.slice(dest + (at - offset), until - at), at);
  };
  for (const r of k.zeroRuns ?? []) {
    if (r.end <= at) continue;
    if (r.start >= end) break;
    const from = Math.max(r.start, at);
    const until = Math.min(r.end, end);
    copyTo(from);
    mem.zero(dest + (from - offset), until - from);
    at = until;
  }
  copyTo(end);
}

/** Where the kernel runs. */
export interface KernelPlacement {
  /** Physical address of its lowest segment (2 MiB aligned). */
  readonly base: number;
  /** Its virtual address minus the linked one (a multiple of 2 MiB; 0 when not moved). */
  readonly virtualOffset: number;
}

/** RAM the kernel may run in and what it must not overlap. */
export interface KaslrBounds {
  /** Ranges of usable RAM, [start, end). */
  readonly ram: readonly { start: number; end: number }[];
  /** Ranges in use by other boot data (initrd, ...), [start, end). */
  readonly avoid: readonly { start: number; end: number }[];
  /** Bytes the kernel needs from its base (the header's init_size). */
  readonly size: number;
  /** Bytes of the virtual range it takes (the larger of its memory and unpacked sizes). */
  readonly virtualSize: number;
  /** Alignment (the header's kernel_alignment). */
  readonly align: number;
}

/**
 * Picks a random physical base and a random virtual offset, as the guest's
 * decompressor does with KASLR on (`choose_random_location`): the base is
 * an aligned address from the linked one up to the top of RAM below 4 GiB
 * (the boot page tables' reach) where the kernel overlaps nothing; the
 * virtual offset an aligned slot in KERNEL_IMAGE_SIZE.
 *
 * @param k the kernel's layout
 * @param b RAM and what to avoid
 * @param random a uniform integer below its argument
 * @returns the placement; the linked base with no offset when nothing else fits
 * @example
 * ```ts ignore
 * const at = chooseKaslr(k, bounds, (n) => Math.floor(Math.random() * n));
 * ```
 */
export function chooseKaslr(
  k: KernelLayout,
  b: KaslrBounds,
  random: (n: number) => number,
): KernelPlacement {
  const slots: number[] = [];
  for (const r of b.ram) {
    const first = Math.ceil(Math.max(r.start, k.linkedBase) / b.align) * b.align;
    const last = Math.min(r.end, 0x1_0000_0000) - b.size;
    for (let a = first; a <= last; a += b.align) {
      if (!b.avoid.some((x) => a < x.end && x.start < a + b.size)) slots.push(a);
    }
  }
  const base = slots.length > 0 ? slots[random(slots.length)] : k.linkedBase;
  const virtSlots = Math.floor((KERNEL_IMAGE_SIZE - k.linkedBase - b.virtualSize) / b.align) + 1;
  const virtualOffset = virtSlots > 0 ? random(virtSlots) * b.align : 0;
  return { base, virtualOffset };
}

/**
 * Applies the relocation table for a virtual offset to the placed kernel.
 * Every entry must point inside the kernel, as the decompressor checks.
 *
 * @param kernel the kernel's memory as placed, from its base (memSize bytes)
 * @param k its layout
 * @param r its relocation table
 * @param virtualOffset the virtual offset chosen (0: nothing to do)
 * @throws {KernelLoaderError} for an entry outside the kernel
 * @example
 * ```ts ignore
 * relocateKernel(mem.slice(at.base, k.memSize), k, relocs, at.virtualOffset);
 * ```
 */
export function relocateKernel(
  kernel: Uint8Array,
  k: KernelLayout,
  r: KernelRelocations,
  virtualOffset: number,
): void {
  if (virtualOffset === 0) return;
  const v = new DataView(kernel.buffer, kernel.byteOffset, kernel.byteLength);
  const map = relocationOrigin(k.linkedBase);
  add32(v, r.relocs32, map, virtualOffset);
  add32(v, r.relocsInverse32, map, -virtualOffset);
  // 64-bit adds as two 32-bit halves with the carry: no BigInt per entry
  // (the offset is below 2^32 and not negative).
  const list = r.relocs64, last = kernel.length - 8;
  for (let i = 0; i < list.length; i++) {
    const p = list[i] - map;
    if (p < 0 || p > last) outside(list[i]);
    const low = v.getUint32(p, true) + virtualOffset;
    v.setUint32(p, low >>> 0, true);
    if (low > 0xffff_ffff) v.setUint32(p + 4, (v.getUint32(p + 4, true) + 1) >>> 0, true);
  }
}

/**
 * The value a relocation entry has for the kernel's first byte: an entry
 * (an `Int32Array` element) minus this is its offset into the kernel. An
 * entry is the low 32 bits of a kernel virtual address, sign-extended
 * (0xffffffff8xxxxxxx = `__START_KERNEL_map` + the linked physical address).
 * {@link relocateKernel}, {@link relocationsInside} and the relocation stub
 * (boot/relocation_stub.ts) all map entries through it.
 *
 * @param linkedBase the kernel's linked physical base ({@link KernelLayout.linkedBase})
 * @returns the entry that addresses offset 0 (negative: the entries are)
 * @example
 * ```ts ignore
 * const offset = relocs32[i] - relocationOrigin(layout.linkedBase);
 * ```
 */
export function relocationOrigin(linkedBase: number): number {
  return Number(BigInt.asIntN(32, START_KERNEL_MAP)) + linkedBase;
}

/**
 * Whether every entry points inside the kernel, as {@link relocateKernel}
 * and the relocation stub (boot/relocation_stub.ts) require: checked once,
 * when a kernel is unpacked, since the stub can only stop the guest.
 *
 * @param k the kernel's layout
 * @param r its relocation table
 * @returns true when all entries are inside
 * @example
 * ```ts ignore
 * if (!relocationsInside(layout, relocations)) return undefined;
 * ```
 */
export function relocationsInside(k: KernelLayout, r: KernelRelocations): boolean {
  const map = relocationOrigin(k.linkedBase);
  const inside = (list: Int32Array, last: number) => {
    for (let i = 0; i < list.length; i++) {
      const p = list[i] - map;
      if (p < 0 || p > last) return false;
    }
    return true;
  };
  return inside(r.relocs32, k.memSize - 4) && inside(r.relocsInverse32, k.memSize - 4) &&
    inside(r.relocs64, k.memSize - 8);
}

// The relocation loops run once a boot, so mostly before V8 optimizes them:
// indexed loops with the bounds check inline (a for-of over a typed array,
// an iterator step each, and a closure per entry took ~3x as long cold).
function add32(v: DataView, list: Int32Array, map: number, delta: number): void {
  const last = v.byteLength - 4;
  for (let i = 0; i < list.length; i++) {
    const p = list[i] - map;
    if (p < 0 || p > last) outside(list[i]);
    v.setUint32(p, (v.getUint32(p, true) + delta) >>> 0, true);
  }
}

function outside(entry: number): never {
  bad(`relocation 0x${(entry >>> 0).toString(16)} outside the kernel`);
}
