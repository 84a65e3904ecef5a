import assert from "node:assert/strict";
import * as aml from "./aml.ts";

function bytes(...b: number[]): Uint8Array {
  return new Uint8Array(b);
}

Deno.test("pkgLength picks the shortest encoding and counts itself", () => {
  assert.deepEqual(aml.pkgLength(0), bytes(1));
  assert.deepEqual(aml.pkgLength(62), bytes(63));
  // 63 + 2 = 65 = 0x41: lead byte 0x40 | 1, then 0x41 >> 4.
  assert.deepEqual(aml.pkgLength(63), bytes(0x41, 0x04));
  assert.deepEqual(aml.pkgLength(0xffd), bytes(0x4f, 0xff));
  // 0xffe + 3 = 0x1001.
  assert.deepEqual(aml.pkgLength(0xffe), bytes(0x81, 0x00, 0x01));
  assert.deepEqual(aml.pkgLength(0x100000), bytes(0xc4, 0x00, 0x00, 0x01));
  assert.throws(() => aml.pkgLength(0x1000_0000), RangeError);
});

Deno.test("nameString encodes root, parent, dual and multi-segment paths", () => {
  assert.deepEqual(aml.nameString("_HID"), bytes(0x5f, 0x48, 0x49, 0x44));
  assert.deepEqual(aml.nameString("\\"), bytes(0x5c, 0x00));
  assert.deepEqual(aml.nameString("\\_SB"), bytes(0x5c, 0x5f, 0x53, 0x42, 0x5f));
  assert.deepEqual(
    aml.nameString("\\_SB.PCI0"),
    bytes(0x5c, 0x2e, 0x5f, 0x53, 0x42, 0x5f, 0x50, 0x43, 0x49, 0x30),
  );
  assert.deepEqual(aml.nameString("^A.B.C").subarray(0, 3), bytes(0x5e, 0x2f, 3));
  assert.deepEqual(aml.nameString("A").subarray(0, 4), bytes(0x41, 0x5f, 0x5f, 0x5f));
  assert.throws(() => aml.nameString("pci0"), RangeError);
  assert.throws(() => aml.nameString("TOOLONG"), RangeError);
  assert.throws(() => aml.nameString("0ABC"), RangeError);
});

Deno.test("integer uses Zero/One/Byte/Word/DWord/QWord", () => {
  assert.deepEqual(aml.integer(0), bytes(0));
  assert.deepEqual(aml.integer(1), bytes(1));
  assert.deepEqual(aml.integer(0xff), bytes(0x0a, 0xff));
  assert.deepEqual(aml.integer(0x100), bytes(0x0b, 0x00, 0x01));
  assert.deepEqual(aml.integer(0xfec00000), bytes(0x0c, 0x00, 0x00, 0xc0, 0xfe));
  assert.deepEqual(aml.integer(0x1_0000_0000n), bytes(0x0e, 0, 0, 0, 0, 1, 0, 0, 0));
  assert.throws(() => aml.integer(-1), RangeError);
  assert.throws(() => aml.integer(1n << 64n), RangeError);
});

Deno.test("eisaId compresses vendor and product", () => {
  assert.deepEqual(aml.eisaId("PNP0A03"), bytes(0x0c, 0x41, 0xd0, 0x0a, 0x03));
  assert.deepEqual(aml.eisaId("PNP0501"), bytes(0x0c, 0x41, 0xd0, 0x05, 0x01));
  assert.throws(() => aml.eisaId("pnp0a03"), RangeError);
});

Deno.test("terms nest with correct lengths", () => {
  const p = aml.pkg(aml.integer(5), aml.integer(0));
  assert.deepEqual(p, bytes(0x12, 0x05, 0x02, 0x0a, 0x05, 0x00));
  assert.deepEqual(aml.name("_UID", aml.integer(1)), bytes(0x08, 0x5f, 0x55, 0x49, 0x44, 1));
  assert.deepEqual(aml.str("AB"), bytes(0x0d, 0x41, 0x42, 0));
  const buf = aml.buffer(new Uint8Array(5000));
  // BufferOp, 3-byte PkgLength (5000 + 3 + 3 = 5006 = 0x138e), WordConst 5000.
  assert.deepEqual(buf.subarray(0, 6), bytes(0x11, 0x80 | 0x0e, 0x38, 0x01, 0x0b, 0x88));
  assert.equal(buf.length, 1 + 3 + 3 + 5000);
  const dev = aml.device("COM1", aml.name("_UID", aml.integer(1)));
  assert.deepEqual(dev.subarray(0, 3), bytes(0x5b, 0x82, dev.length - 2));
  const m = aml.method("_STA", [aml.ret(aml.integer(0x0f))], { args: 0, serialized: true });
  assert.deepEqual(m, bytes(0x14, 0x09, 0x5f, 0x53, 0x54, 0x41, 0x08, 0xa4, 0x0a, 0x0f));
  assert.throws(() => aml.method("FOO", [], { args: 8 }), RangeError);
});

Deno.test("resource descriptors have their ACPI layouts", () => {
  assert.deepEqual(aml.ioPort(0x3f8, 0x3f8, 0, 8), bytes(0x47, 1, 0xf8, 3, 0xf8, 3, 0, 8));
  assert.deepEqual(aml.irqNoFlags(4), bytes(0x22, 0x10, 0x00));
  const bus = aml.wordBusNumber(0, 0);
  assert.deepEqual(bus, bytes(0x88, 13, 0, 2, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0));
  const mem = aml.dwordMemory(0xc0000000, 0xfebfffff);
  assert.equal(mem.length, 26);
  assert.equal(new DataView(mem.buffer).getUint32(22, true), 0x3ec00000);
  const q = aml.qwordMemory(0x100_0000_0000n, 0x1ff_ffff_ffffn, { cacheable: true });
  assert.equal(q.length, 46);
  assert.equal(q[5], 0x03);
  const rt = aml.resourceTemplate(aml.irqNoFlags(4));
  assert.deepEqual(rt, bytes(0x11, 0x08, 0x0a, 0x05, 0x22, 0x10, 0x00, 0x79, 0x00));
  assert.throws(() => aml.irqNoFlags(16), RangeError);
  assert.throws(() => aml.wordIo(0x100, 0xff), RangeError);
  assert.throws(() => aml.wordIo(0, 0x10000), RangeError);
});
