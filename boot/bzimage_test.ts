import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import { debianKernel, type KernelFlavour } from "../tests/fixtures/debian.ts";
import { fakeBzImage } from "./_test_images.ts";
import {
  BOOT_E820_ENTRY_SIZE,
  BOOT_PARAMS,
  E820_RAM,
  E820_RESERVED,
  getField,
  SETUP_HEADER,
} from "./boot_params.ts";
import { loadBzImage, parseBzImage } from "./bzimage.ts";
import { buildE820 } from "./e820.ts";
import { KernelLoaderError } from "./kernel_loader_error.ts";
import { CMDLINE_START, ZERO_PAGE_START } from "./layout.ts";

const MiB = 1 << 20;

function zeroPage(mem: GuestMemory): DataView {
  const zp = mem.slice(ZERO_PAGE_START, 4096);
  return new DataView(zp.buffer, zp.byteOffset, 4096);
}

function rejects(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KernelLoaderError, `not a KernelLoaderError: ${e}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n") && !e.message.endsWith("."), e.message);
    return true;
  });
}

Deno.test("loadBzImage places kernel, initrd, cmdline and zero page", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(64 * MiB));
  const image = fakeBzImage();
  const initrd = new Uint8Array(3 * MiB + 123).fill(0xab);
  const e820 = buildE820(mem);
  const r = loadBzImage(mem, image, {
    cmdline: "console=ttyS0 quiet",
    initrd,
    e820,
    rsdp: 0xe0000,
  });
  assert.equal(r.kernelAddr, 0x1000000);
  assert.equal(r.entry, 0x1000200);
  assert.equal(r.kernelEnd, 0x1400000);
  assert.equal(r.bootParams, ZERO_PAGE_START);
  assert.equal(r.header.kernelVersion, "9.9.9-test");
  // Kernel bytes copied from after the setup sectors.
  assert.deepEqual(mem.slice(r.kernelAddr, 0x20000), image.subarray(5 * 512));
  // Initrd: highest page-aligned address with room below 64 MiB.
  assert.deepEqual(r.initrd, { addr: 64 * MiB - 3 * MiB - 4096, size: initrd.length });
  assert.equal(mem.readU8(r.initrd!.addr + initrd.length - 1), 0xab);
  // Command line.
  const cmd = mem.slice(CMDLINE_START, r.cmdlineSize);
  assert.equal(new TextDecoder().decode(cmd), "console=ttyS0 quiet\0");
  // Zero page.
  const zp = zeroPage(mem);
  assert.equal(getField(zp, 0, SETUP_HEADER.type_of_loader), 0xff);
  assert.equal(getField(zp, 0, SETUP_HEADER.header), 0x53726448);
  assert.equal(getField(zp, 0, SETUP_HEADER.version), 0x020f);
  assert.equal(getField(zp, 0, SETUP_HEADER.cmd_line_ptr), CMDLINE_START);
  assert.equal(getField(zp, 0, BOOT_PARAMS.ext_cmd_line_ptr), 0);
  assert.equal(getField(zp, 0, SETUP_HEADER.ramdisk_image), r.initrd!.addr);
  assert.equal(getField(zp, 0, SETUP_HEADER.ramdisk_size), initrd.length);
  assert.equal(getField(zp, 0, SETUP_HEADER.code32_start), r.kernelAddr);
  assert.equal(getField(zp, 0, BOOT_PARAMS.acpi_rsdp_addr), 0xe0000);
  assert.equal(getField(zp, 0, BOOT_PARAMS.sentinel), 0);
  assert.equal(getField(zp, 0, BOOT_PARAMS.e820_entries), e820.length);
  for (let i = 0; i < e820.length; i++) {
    const base = BOOT_PARAMS.e820_table.offset + i * BOOT_E820_ENTRY_SIZE;
    assert.equal(Number(zp.getBigUint64(base, true)), e820[i].addr);
    assert.equal(Number(zp.getBigUint64(base + 8, true)), e820[i].size);
    assert.equal(zp.getUint32(base + 16, true), e820[i].type);
  }
});

Deno.test("loadBzImage falls back to the first aligned address when pref_address is out of RAM", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(16 * MiB));
  const r = loadBzImage(mem, fakeBzImage({ prefAddress: 0x1000000 }), { cmdline: "" });
  assert.equal(r.kernelAddr, 0x200000);
  assert.equal(r.kernelEnd, 0x600000);
});

Deno.test("loadBzImage loads a non-relocatable kernel at 1 MiB and reserves its run-time range", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(32 * MiB));
  const r = loadBzImage(mem, fakeBzImage({ relocatable: false }), {
    cmdline: "x",
    initrd: new Uint8Array(MiB),
  });
  assert.equal(r.kernelAddr, 0x100000);
  assert.equal(r.kernelEnd, 0x1400000);
  assert.equal(r.initrd!.addr, 31 * MiB);
});

Deno.test("loadBzImage honours initrd_addr_max", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(128 * MiB));
  const r = loadBzImage(mem, fakeBzImage({ initrdAddrMax: 0x3ffffff }), {
    cmdline: "",
    initrd: new Uint8Array(0x1800),
  });
  assert.equal(r.initrd!.addr, 0x4000000 - 0x2000);
});

Deno.test("loadBzImage puts an initrd above 4 GiB when low RAM is full and the kernel allows it", () => {
  const mem = GuestMemory.allocate(0xc000_0000 + 64 * MiB);
  try {
    const e820 = [
      { addr: 0, size: 0x9fc00, type: E820_RAM },
      { addr: 0x100000, size: 47 * MiB, type: E820_RAM },
      { addr: 0x1_0000_0000, size: 64 * MiB, type: E820_RAM },
    ];
    const initrd = new Uint8Array(40 * MiB).fill(7);
    const r = loadBzImage(mem, fakeBzImage(), { cmdline: "", initrd, e820 });
    assert.equal(r.initrd!.addr, 0x1_0000_0000 + 24 * MiB);
    assert.equal(mem.readU8(r.initrd!.addr), 7);
    const zp = zeroPage(mem);
    assert.equal(getField(zp, 0, SETUP_HEADER.ramdisk_image), 24 * MiB);
    assert.equal(getField(zp, 0, BOOT_PARAMS.ext_ramdisk_image), 1);
    assert.equal(getField(zp, 0, BOOT_PARAMS.ext_ramdisk_size), 0);
    // Without XLF_CAN_BE_LOADED_ABOVE_4G it does not fit.
    rejects(
      () => loadBzImage(mem, fakeBzImage({ xloadflags: 1 }), { cmdline: "", initrd, e820 }),
      /^Initrd too big/,
    );
  } finally {
    mem.close();
  }
});

Deno.test("parseBzImage treats setup_sects 0 as 4", () => {
  const h = parseBzImage(fakeBzImage({ setupSects: 0 }));
  assert.equal(h.setupSize, 5 * 512);
});

Deno.test("bad images give one-line KernelLoaderErrors", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(64 * MiB));
  const load = (img: Uint8Array, initrd?: Uint8Array, cmdline = "") => () =>
    loadBzImage(mem, img, { cmdline, initrd });
  rejects(load(new Uint8Array(100)), /^Not a Linux bzImage: file is only 100 bytes/);
  const garbage = new Uint8Array(1 << 16);
  crypto.getRandomValues(garbage);
  rejects(load(garbage), /^Not a Linux bzImage: no HdrS magic/);
  const noFlag = fakeBzImage();
  noFlag[0x1fe] = 0;
  rejects(load(noFlag), /^Not a Linux bzImage: boot flag/);
  rejects(load(fakeBzImage({ version: 0x0205 })), /boot protocol 2\.05 is too old: 2\.06/);
  rejects(load(fakeBzImage().subarray(0, 0x230)), /^Kernel image truncated/);
  rejects(load(fakeBzImage().subarray(0, 5 * 512)), /^Kernel image truncated/);
  rejects(load(fakeBzImage().subarray(0, 5 * 512 + 0x1000)), /^Kernel image truncated/);
  rejects(load(fakeBzImage({ loadflags: 0 })), /zImage/);
  rejects(load(fakeBzImage({ xloadflags: 0 })), /no 64-bit entry point/);
  rejects(load(fakeBzImage({ kernelAlignment: 0x300000 })), /alignment/);
  rejects(load(fakeBzImage({ initSize: 64 * MiB })), /^Kernel too big for guest RAM/);
  rejects(load(fakeBzImage(), new Uint8Array(60 * MiB)), /^Initrd too big/);
  rejects(load(fakeBzImage({ cmdlineSize: 10 }), undefined, "a".repeat(11)), /too long: 11/);
  rejects(load(fakeBzImage(), undefined, "a\0b"), /NUL/);
  // Nothing was written by the failed loads.
  assert.ok(mem.slice(0, 64 * MiB).every((b) => b === 0));
});

async function realKernel(flavour: KernelFlavour): Promise<Uint8Array> {
  const k = await debianKernel(flavour);
  return await Deno.readFile(k.vmlinuz);
}

for (const flavour of ["amd64", "cloud-amd64"] as const) {
  Deno.test(`Debian ${flavour} bzImage parses, loads and rejects damage`, async () => {
    const image = await realKernel(flavour);
    const h = parseBzImage(image);
    assert.ok(h.version >= 0x020f, `protocol ${h.version.toString(16)}`);
    assert.ok(h.relocatable);
    assert.equal(h.kernelAlignment, 0x200000);
    assert.equal(h.prefAddress, 0x1000000);
    assert.match(h.kernelVersion, /^6\.\d+\.\d+-\d+-(cloud-)?amd64 /);
    assert.ok(h.initSize > h.kernelSize);

    const mem = GuestMemory.fromBuffer(new ArrayBuffer(192 * MiB));
    const initrd = new Uint8Array(4 * MiB).fill(1);
    const r = loadBzImage(mem, image, { cmdline: "console=ttyS0 panic=-1", initrd });
    assert.equal(r.kernelAddr, 0x1000000);
    assert.equal(r.entry, 0x1000200);
    assert.ok(r.initrd!.addr >= r.kernelEnd);
    assert.equal(r.initrd!.addr, 188 * MiB);
    assert.deepEqual(
      mem.slice(r.kernelAddr, 4096),
      image.subarray(h.setupSize, h.setupSize + 4096),
    );
    const zp = zeroPage(mem);
    assert.deepEqual(
      new Uint8Array(zp.buffer, zp.byteOffset + 0x202, 4),
      new TextEncoder().encode("HdrS"),
    );
    assert.equal(getField(zp, 0, SETUP_HEADER.type_of_loader), 0xff);
    const e820 = buildE820(mem);
    assert.equal(getField(zp, 0, BOOT_PARAMS.e820_entries), e820.length);
    assert.ok(e820.some((e) => e.type === E820_RESERVED && e.addr === 0xe0000));

    const small = GuestMemory.fromBuffer(new ArrayBuffer(48 * MiB));
    rejects(() => loadBzImage(small, image, { cmdline: "" }), /^Kernel too big for guest RAM/);
    rejects(
      () => loadBzImage(mem, image, { cmdline: "", initrd: new Uint8Array(130 * MiB) }),
      /^Initrd too big/,
    );
    rejects(() => parseBzImage(image.subarray(0, image.length - 4096)), /^Kernel image truncated/);
    rejects(() => parseBzImage(image.subarray(0, 0x1000)), /^Kernel image truncated/);
    rejects(() => parseBzImage(image.subarray(0x200)), /^Not a Linux bzImage/);
    const old = image.slice(0, 0x1000 + h.setupSize);
    old[0x206] = 0x04;
    rejects(() => parseBzImage(old), /2\.04 is too old/);
    rejects(
      () => loadBzImage(mem, image, { cmdline: "x".repeat(h.cmdlineSize + 1) }),
      /^Kernel command line too long/,
    );
  });
}
