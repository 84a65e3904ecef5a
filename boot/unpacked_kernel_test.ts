import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import { getField, SETUP_HEADER } from "./boot_params.ts";
import { loadBzImage } from "./bzimage.ts";
import { parseBzImage } from "./bzimage.ts";
import { KernelLoaderError } from "./kernel_loader_error.ts";
import {
  chooseKaslr,
  KASLR_FLAG,
  kernelPayload,
  parseKernelLayout,
  parseKernelRelocations,
  placePayload,
  relocateKernel,
  relocationsInside,
  type UnpackedKernelBytes,
  zeroRunsOf,
} from "./unpacked_kernel.ts";
import { bzImageWithPayload, makeElf, relocEntry, unpackedPayload } from "./_test_images.ts";
import { ZERO_PAGE_START } from "./layout.ts";
import { RELOCATION_PARAMS_START, RELOCATION_STUB_START } from "./relocation_stub.ts";
import { runRelocationStubModel } from "./testdata/relocation_stub_model.ts";

const MIB = 1 << 20;
const BASE = 0x100_0000; // LOAD_PHYSICAL_ADDR

/** A small kernel: text with values to relocate, and data whose memory size is larger. */
function kernelBytes(): Uint8Array<ArrayBuffer> {
  const text = new Uint8Array(0x3000).fill(0x90);
  const t = new DataView(text.buffer);
  t.setUint32(0x10, 0x8100_0100, true); // a 32-bit kernel address
  t.setUint32(0x20, 0x0000_5000, true); // a value an inverse relocation lowers
  t.setBigUint64(0x30, 0xffff_ffff_8100_0200n, true); // a 64-bit kernel address
  t.setBigUint64(0x40, 0x0000_0001_ffff_ff00n, true); // carries into the high half
  const data = new Uint8Array(0x1000).fill(0xd0);
  const elf = makeElf(BigInt(BASE), [
    { type: 1, paddr: BASE, vaddr: 0xffff_ffff_8100_0000n, data: text },
    { type: 1, paddr: BASE + 0x4000, vaddr: 0xffff_ffff_8100_4000n, data, memsz: 0x3000 },
  ]);
  return unpackedPayload(elf, {
    r32: [relocEntry(BASE + 0x10)],
    inverse32: [relocEntry(BASE + 0x20)],
    r64: [relocEntry(BASE + 0x30), relocEntry(BASE + 0x40)],
  });
}

function source(bytes: Uint8Array): UnpackedKernelBytes {
  const layout = parseKernelLayout(bytes, bytes.length);
  return {
    layout,
    relocations: parseKernelRelocations(bytes.subarray(layout.elfEnd)),
    unpackedSize: bytes.length,
    copy: (dest, offset) => dest.set(bytes.subarray(offset, offset + dest.length)),
  };
}

Deno.test("the ELF layout and the three relocation lists of an unpacked payload", () => {
  const bytes = kernelBytes();
  const k = parseKernelLayout(bytes, bytes.length);
  assert.equal(k.entry, BASE);
  assert.equal(k.linkedBase, BASE);
  assert.equal(k.memSize, 0x7000);
  assert.deepEqual(k.segments.map((s) => [s.paddr, s.fileSize, s.memSize]), [
    [BASE, 0x3000, 0x3000],
    [BASE + 0x4000, 0x1000, 0x3000],
  ]);
  const r = parseKernelRelocations(bytes.subarray(k.elfEnd));
  assert.deepEqual([...r.relocs32], [relocEntry(BASE + 0x10)]);
  assert.deepEqual([...r.relocsInverse32], [relocEntry(BASE + 0x20)]);
  assert.deepEqual(
    [...r.relocs64].sort(),
    [relocEntry(BASE + 0x30), relocEntry(BASE + 0x40)].sort(),
  );
});

Deno.test("malformed unpacked payloads are refused, naming what is wrong", () => {
  const bytes = kernelBytes();
  assert.throws(() => parseKernelLayout(new Uint8Array(64), 64), /no ELF header/);
  const odd = bytes.slice(0, bytes.length - 2);
  assert.throws(() => parseKernelLayout(odd, odd.length), /relocation table size/);
  const k = parseKernelLayout(bytes, bytes.length);
  // A table whose first list never ends.
  assert.throws(() => parseKernelRelocations(new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0])), /zero end/);
  // An entry pointing past the kernel.
  const r = {
    relocs32: new Int32Array([relocEntry(BASE + 0x7000)]),
    relocsInverse32: new Int32Array(),
    relocs64: new Int32Array(),
  };
  assert.throws(
    () => relocateKernel(new Uint8Array(k.memSize), k, r, 0x20_0000),
    KernelLoaderError,
  );
});

Deno.test("relocations add the virtual offset, subtract it for inverse entries, and carry in 64-bit ones", () => {
  const bytes = kernelBytes();
  const src = source(bytes);
  const mem = new Uint8Array(src.layout.memSize);
  mem.set(bytes.subarray(src.layout.segments[0].offset, src.layout.segments[0].offset + 0x3000));
  relocateKernel(mem, src.layout, src.relocations, 0x60_0000);
  const v = new DataView(mem.buffer);
  assert.equal(v.getUint32(0x10, true), 0x8160_0100);
  assert.equal(v.getUint32(0x20, true), (0x5000 - 0x60_0000) >>> 0);
  assert.equal(v.getBigUint64(0x30, true), 0xffff_ffff_8160_0200n);
  assert.equal(v.getBigUint64(0x40, true), 0x0000_0002_005f_ff00n);
  // No offset: nothing changes.
  const before = mem.slice();
  relocateKernel(mem, src.layout, src.relocations, 0);
  assert.deepEqual(mem, before);
});

Deno.test("KASLR places the kernel in RAM, aligned, clear of the initrd, and below 4 GiB", () => {
  const k = source(kernelBytes()).layout;
  const bounds = {
    ram: [{ start: 0x10_0000, end: 0x9fc00 + 0x10_0000 }, { start: 0x10_0000, end: 64 * MIB }],
    avoid: [{ start: 40 * MIB, end: 42 * MIB }],
    size: 8 * MIB,
    virtualSize: 0x7000,
    align: 2 * MIB,
  };
  const bases = new Set<number>();
  for (let i = 0; i < 40; i++) {
    const at = chooseKaslr(k, bounds, (n) => i % n);
    assert.equal(at.base % (2 * MIB), 0);
    assert.ok(at.base >= BASE && at.base + 8 * MIB <= 64 * MIB, `base ${at.base}`);
    assert.ok(
      at.base + 8 * MIB <= 40 * MIB || at.base >= 42 * MIB,
      `clear of the initrd: ${at.base}`,
    );
    assert.equal(at.virtualOffset % (2 * MIB), 0);
    assert.ok(at.virtualOffset + BASE + 0x7000 <= 512 * MIB);
    bases.add(at.base);
  }
  // 16..32 MiB then 42..56 MiB: 9 + 8 slots.
  assert.equal(bases.size, 17);
  // Nowhere to go: the linked base.
  const full = chooseKaslr(k, { ...bounds, ram: [{ start: 0, end: 20 * MIB }] }, () => 0);
  assert.equal(full.base, BASE);
});

Deno.test("a bzImage loads from its unpacked kernel: segments, zeroed memory, relocations, entry, KASLR flag", () => {
  const bytes = kernelBytes();
  const image = bzImageWithPayload(
    new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2]),
    bytes.length,
    {
      initSize: 0x80_0000,
    },
  );
  const mem = GuestMemory.allocate(128 * MIB);
  mem.fill(0, 128 * MIB, 0xee);
  const initrd = new Uint8Array(0x1000).fill(7);
  const boot = loadBzImage(mem, image, {
    cmdline: "console=ttyS0",
    initrd,
    unpacked: source(bytes),
    random: (n) => n - 1, // the highest slots
  });
  const at = boot.unpacked!;
  assert.equal(at.kaslr, true);
  assert.ok(at.base > BASE && at.virtualOffset > 0);
  // The relocations are the guest's to apply, in the stub vCPU 0 starts at.
  assert.equal(boot.entry, RELOCATION_STUB_START);
  assert.equal(boot.relocationParams, RELOCATION_PARAMS_START);
  assert.equal(mem.readU32(at.base + 0x10), 0x8100_0100, "not relocated yet");
  const table = Number(mem.readU64(RELOCATION_PARAMS_START + 8));
  assert.ok(table >= 0x10_0000 && table % 4096 === 0);
  assert.ok(table + 16 <= at.base || table >= at.base + 0x80_0000, "clear of the kernel");
  assert.ok(
    table + 16 <= boot.initrd!.addr || table >= boot.initrd!.addr + 0x1000,
    "and the initrd",
  );
  assert.equal(runRelocationStubModel(mem, boot.relocationParams!), at.base, "then its entry");
  assert.equal(mem.readU8(at.base + 0x100), 0x90);
  assert.equal(mem.readU32(at.base + 0x10), 0x8100_0100 + at.virtualOffset);
  assert.equal(mem.readU32(at.base + 0x20), (0x5000 - at.virtualOffset) >>> 0);
  const delta = BigInt(at.virtualOffset);
  assert.equal(mem.readU64(at.base + 0x30), BigInt.asUintN(64, 0xffff_ffff_8100_0200n + delta));
  assert.equal(mem.readU64(at.base + 0x40), 0x0000_0001_ffff_ff00n + delta);
  assert.equal(mem.readU8(at.base + 0x4000), 0xd0);
  assert.equal(mem.readU8(at.base + 0x5000), 0, "beyond the file size: zero");
  assert.equal(mem.readU8(at.base + 0x6fff), 0);
  assert.ok(boot.initrd!.addr >= at.base + 0x80_0000 || boot.initrd!.addr + 0x1000 <= at.base);
  const zp = mem.slice(ZERO_PAGE_START, 0x1000);
  const loadflags = getField(
    new DataView(zp.buffer, zp.byteOffset, 0x1000),
    0,
    SETUP_HEADER.loadflags,
  );
  assert.equal(loadflags & KASLR_FLAG, KASLR_FLAG);

  // nokaslr: the linked base, no offset, no flag, the values as linked.
  const mem2 = GuestMemory.allocate(128 * MIB);
  const off = loadBzImage(mem2, image, { cmdline: "quiet nokaslr", unpacked: source(bytes) });
  assert.deepEqual(off.unpacked, { base: BASE, virtualOffset: 0, kaslr: false });
  assert.equal(mem2.readU32(BASE + 0x10), 0x8100_0100);
  const zp2 = mem2.slice(ZERO_PAGE_START, 0x1000);
  assert.equal(
    getField(new DataView(zp2.buffer, zp2.byteOffset, 0x1000), 0, SETUP_HEADER.loadflags) &
      KASLR_FLAG,
    0,
  );
  // "nokaslrx" is another word.
  const on = loadBzImage(GuestMemory.allocate(128 * MIB), image, {
    cmdline: "nokaslrx",
    unpacked: source(bytes),
  });
  assert.equal(on.unpacked!.kaslr, true);
});

Deno.test("relocationsInside: every entry within the kernel's memory, fields whole", () => {
  const k = parseKernelLayout(kernelBytes().subarray(0, 4096), kernelBytes().length);
  const none = new Int32Array();
  const ok = { relocs32: Int32Array.of(relocEntry(BASE)), relocsInverse32: none, relocs64: none };
  assert.equal(relocationsInside(k, ok), true);
  const past = { ...ok, relocs64: Int32Array.of(relocEntry(BASE + k.memSize - 4)) };
  assert.equal(relocationsInside(k, past), false);
  const below = { ...ok, relocs32: Int32Array.of(relocEntry(BASE - 4)) };
  assert.equal(relocationsInside(k, below), false);
});

Deno.test("with no free RAM for the relocation lists, the loader applies them itself", () => {
  const bytes = kernelBytes();
  const image = bzImageWithPayload(
    new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]),
    bytes.length,
    {
      initSize: 0x80_0000,
    },
  );
  const mem = GuestMemory.allocate(64 * MIB);
  // RAM above 1 MiB is the kernel's window alone.
  const e820 = [{ addr: 0, size: 0x9fc00, type: 1 }, { addr: BASE, size: 0x80_0000, type: 1 }];
  const boot = loadBzImage(mem, image, {
    cmdline: "",
    e820,
    unpacked: source(bytes),
    random: (n) => n - 1,
  });
  const at = boot.unpacked!;
  assert.equal(at.base, BASE);
  assert.ok(at.virtualOffset > 0);
  assert.equal(boot.entry, BASE);
  assert.equal(boot.relocationParams, undefined);
  assert.equal(mem.readU32(BASE + 0x10), 0x8100_0100 + at.virtualOffset);
});

Deno.test("the payload's format and unpacked size come from the bzImage header", () => {
  const xz = bzImageWithPayload(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 9, 9]), 123456);
  const p = kernelPayload(xz, parseBzImage(xz))!;
  assert.equal(p.format, "xz");
  assert.equal(p.unpackedSize, 123456);
  assert.equal(p.data.length, 8);
  const zst = bzImageWithPayload(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 1, 2]), 99);
  assert.equal(kernelPayload(zst, parseBzImage(zst))!.format, "zstd");
  const gz = bzImageWithPayload(new Uint8Array([0x1f, 0x8b, 8, 0, 0, 0]), 99);
  assert.equal(kernelPayload(gz, parseBzImage(gz))!.format, "gzip");
  const odd = bzImageWithPayload(new Uint8Array([1, 2, 3, 4, 5, 6]), 99);
  assert.equal(kernelPayload(odd, parseBzImage(odd))!.format, "unknown");
});

Deno.test("zero runs: whole pages of zeros, 64 KiB at least, to the payload's last whole page", () => {
  const page = 4096;
  const b = new Uint8Array(64 * page + 100);
  b[0] = 1; // page 0 has data
  b[17 * page + 4095] = 1; // pages 1-16 zero (64 KiB): a run; page 17 has data
  b[20 * page] = 1; // pages 18-19: too short
  // pages 21-63 zero, then a partial page: the run ends at the last whole page
  b[64 * page + 50] = 0;
  assert.deepEqual(zeroRunsOf(b), [
    { start: page, end: 17 * page },
    { start: 21 * page, end: 64 * page },
  ]);
  assert.deepEqual(zeroRunsOf(new Uint8Array(15 * page)), []);
  // An unaligned view is scanned byte by byte, with the same answer.
  const odd = new Uint8Array(new ArrayBuffer(b.length + 1), 1);
  odd.set(b);
  assert.deepEqual(zeroRunsOf(odd), zeroRunsOf(b));
});

Deno.test("placePayload copies around the zero runs and zeroes them, in fresh or used RAM", () => {
  const page = 4096;
  const payload = new Uint8Array(60 * page);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 13 + 1) & 0xff || 1;
  payload.fill(0, 3 * page, 20 * page);
  payload.fill(0, 30 * page);
  const copied: Array<[number, number]> = [];
  const k: UnpackedKernelBytes = {
    layout: parseKernelLayout(kernelBytes().subarray(0, 4096), kernelBytes().length),
    relocations: {
      relocs32: new Int32Array(),
      relocsInverse32: new Int32Array(),
      relocs64: new Int32Array(),
    },
    unpackedSize: payload.length,
    copy: (dest, offset) => {
      copied.push([offset, dest.length]);
      dest.set(payload.subarray(offset, offset + dest.length));
    },
    zeroRuns: zeroRunsOf(payload),
  };
  for (
    const mem of [GuestMemory.allocate(2 * MIB), GuestMemory.fromBuffer(new ArrayBuffer(2 * MIB))]
  ) {
    copied.length = 0;
    mem.fill(0, 2 * MIB, 0xee); // used RAM: the zero runs must be written
    // From an unaligned offset into the first run, to an unaligned end in the second.
    const from = 2 * page + 100, size = 50 * page + 7;
    placePayload(mem, k, 0x10000 + 5, from, size);
    assert.deepEqual(mem.slice(0x10000 + 5, size), payload.subarray(from, from + size));
    assert.equal(mem.readU8(0x10000 + 4), 0xee, "nothing before");
    assert.equal(mem.readU8(0x10000 + 5 + size), 0xee, "nothing after");
    // Only the data was copied: before the first run, and between the two.
    assert.deepEqual(copied, [[from, 3 * page - from], [20 * page, 10 * page]]);
    mem.close();
  }
});

Deno.test("GuestMemory.zero zeroes exactly its range, dropping whole pages of allocated RAM", () => {
  const mem = GuestMemory.allocate(2 * MIB);
  mem.fill(0, 2 * MIB, 0xab);
  mem.zero(4096 - 3, 3 * 4096 + 10);
  assert.equal(mem.readU8(4096 - 4), 0xab);
  assert.ok(mem.slice(4096 - 3, 3 * 4096 + 10).every((b) => b === 0));
  assert.equal(mem.readU8(4096 - 3 + 3 * 4096 + 10), 0xab);
  mem.zero(100, 10); // less than a page
  assert.ok(mem.slice(100, 10).every((b) => b === 0));
  assert.equal(mem.readU8(110), 0xab);
  assert.throws(() => mem.zero(2 * MIB - 10, 20), /outside|guest/i);
  mem.close();
});
