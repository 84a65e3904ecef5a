/**
 * Synthetic kernel images for the loader tests.
 *
 * @module
 */
import {
  BOOT_FLAG_MAGIC,
  HDRS_MAGIC,
  LOADED_HIGH,
  setField,
  SETUP_HEADER,
  XLF_CAN_BE_LOADED_ABOVE_4G,
  XLF_KERNEL_64,
} from "./boot_params.ts";

/** Header values of a synthetic bzImage. */
export interface FakeBzImage {
  version?: number;
  setupSects?: number;
  kernelSize?: number;
  loadflags?: number;
  xloadflags?: number;
  relocatable?: boolean;
  kernelAlignment?: number;
  prefAddress?: number;
  initSize?: number;
  initrdAddrMax?: number;
  cmdlineSize?: number;
}

/**
 * Builds a bzImage with a protocol-2.15-style header and a protected-mode
 * part filled with a recognisable pattern (byte i = i & 0xff ^ 0x5a).
 */
export function fakeBzImage(o: FakeBzImage = {}): Uint8Array<ArrayBuffer> {
  const sects = o.setupSects ?? 4;
  const setup = ((sects || 4) + 1) * 512;
  const kernelSize = o.kernelSize ?? 0x20000;
  const img = new Uint8Array(setup + kernelSize);
  for (let i = 0; i < kernelSize; i++) img[setup + i] = (i & 0xff) ^ 0x5a;
  const v = new DataView(img.buffer);
  const set = (f: { offset: number; size: number }, x: number) => setField(v, 0, f, x);
  set(SETUP_HEADER.setup_sects, sects);
  set(SETUP_HEADER.syssize, Math.ceil(kernelSize / 16));
  set(SETUP_HEADER.boot_flag, BOOT_FLAG_MAGIC);
  img[0x200] = 0xeb;
  img[0x201] = 0x6a;
  set(SETUP_HEADER.header, HDRS_MAGIC);
  set(SETUP_HEADER.version, o.version ?? 0x020f);
  set(SETUP_HEADER.loadflags, o.loadflags ?? LOADED_HIGH);
  set(SETUP_HEADER.initrd_addr_max, o.initrdAddrMax ?? 0x7fffffff);
  set(SETUP_HEADER.kernel_alignment, o.kernelAlignment ?? 0x200000);
  set(SETUP_HEADER.relocatable_kernel, o.relocatable === false ? 0 : 1);
  set(SETUP_HEADER.min_alignment, 21);
  set(
    SETUP_HEADER.xloadflags,
    o.xloadflags ?? (XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G),
  );
  set(SETUP_HEADER.cmdline_size, o.cmdlineSize ?? 2047);
  set(SETUP_HEADER.pref_address, o.prefAddress ?? 0x1000000);
  set(SETUP_HEADER.init_size, o.initSize ?? 0x400000);
  // "ver\0" as the kernel version string, at setup offset 0x300.
  set(SETUP_HEADER.kernel_version, 0x100);
  img.set(new TextEncoder().encode("9.9.9-test\0"), 0x300);
  return img;
}

/** A segment of a synthetic ELF. */
export interface Seg {
  type: number;
  paddr: number;
  vaddr?: bigint;
  data: Uint8Array;
  memsz?: number;
}

/** A minimal ELF64 x86-64 executable: header, program headers, segment data. */
export function makeElf(entry: bigint, segs: Seg[], machine = 62): Uint8Array<ArrayBuffer> {
  const phoff = 64;
  let off = phoff + segs.length * 56;
  const offsets = segs.map((s) => {
    const o = off;
    off += s.data.length;
    return o;
  });
  const img = new Uint8Array(off);
  const v = new DataView(img.buffer);
  img.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  v.setUint16(16, 2, true);
  v.setUint16(18, machine, true);
  v.setUint32(20, 1, true);
  v.setBigUint64(24, entry, true);
  v.setBigUint64(32, BigInt(phoff), true);
  v.setUint16(52, 64, true);
  v.setUint16(54, 56, true);
  v.setUint16(56, segs.length, true);
  segs.forEach((s, i) => {
    const p = phoff + i * 56;
    v.setUint32(p, s.type, true);
    v.setBigUint64(p + 8, BigInt(offsets[i]), true);
    v.setBigUint64(p + 16, s.vaddr ?? BigInt(s.paddr), true);
    v.setBigUint64(p + 24, BigInt(s.paddr), true);
    v.setBigUint64(p + 32, BigInt(s.data.length), true);
    v.setBigUint64(p + 40, BigInt(s.memsz ?? s.data.length), true);
    img.set(s.data, offsets[i]);
  });
  return img;
}

/** An ELF note with its padding. */
export function note(name: string, type: number, desc: Uint8Array): Uint8Array {
  const n = new TextEncoder().encode(name + "\0");
  const pad = (x: number) => (x + 3) & ~3;
  const out = new Uint8Array(12 + pad(n.length) + pad(desc.length));
  const v = new DataView(out.buffer);
  v.setUint32(0, n.length, true);
  v.setUint32(4, desc.length, true);
  v.setUint32(8, type, true);
  out.set(n, 12);
  out.set(desc, 12 + pad(n.length));
  return out;
}

/** The kernel virtual address (low 32 bits, as the relocation table holds it) of a linked physical address. */
export function relocEntry(paddr: number): number {
  return (0x8000_0000 + paddr) | 0;
}

/** An unpacked payload: the ELF, then the relocation table as the relocs tool appends it. */
export function unpackedPayload(
  elf: Uint8Array,
  relocs: { r32?: number[]; inverse32?: number[]; r64?: number[] },
): Uint8Array<ArrayBuffer> {
  // Forwards: 0, 64-bit entries, 0, inverse 32-bit entries, 0, 32-bit entries.
  const table = [0, ...relocs.r64 ?? [], 0, ...relocs.inverse32 ?? [], 0, ...relocs.r32 ?? []];
  const out = new Uint8Array(elf.length + table.length * 4);
  out.set(elf);
  const v = new DataView(out.buffer, elf.length);
  table.forEach((x, i) => v.setInt32(i * 4, x, true));
  return out;
}

/**
 * A bzImage whose payload is `compressed` followed by the 32-bit unpacked
 * size, as the kernel's build appends it.
 */
export function bzImageWithPayload(
  compressed: Uint8Array,
  unpackedSize: number,
  o: FakeBzImage = {},
): Uint8Array<ArrayBuffer> {
  const payloadOffset = 0x400;
  const kernelSize = Math.ceil((payloadOffset + compressed.length + 4 + 0x100) / 16) * 16;
  const img = fakeBzImage({ ...o, kernelSize });
  const setup = ((o.setupSects ?? 4) + 1) * 512;
  const v = new DataView(img.buffer);
  setField(v, 0, SETUP_HEADER.payload_offset, payloadOffset);
  setField(v, 0, SETUP_HEADER.payload_length, compressed.length + 4);
  img.set(compressed, setup + payloadOffset);
  v.setUint32(setup + payloadOffset + compressed.length, unpackedSize, true);
  return img;
}
