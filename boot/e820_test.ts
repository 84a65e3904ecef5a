import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import { E820_ACPI, E820_RAM, E820_RESERVED } from "./boot_params.ts";
import { buildE820, usableEnd } from "./e820.ts";
import { placeInitrd } from "./initrd.ts";

const MiB = 1 << 20;
const GiB = 1024 * MiB;

function hexMap(map: { addr: number; size: number; type: number }[]): string[] {
  return map.map((e) => `${e.addr.toString(16)}+${e.size.toString(16)}:${e.type}`);
}

Deno.test("buildE820 for small RAM: low RAM, EBDA, BIOS area, RAM from 1 MiB", () => {
  const map = buildE820(GuestMemory.fromBuffer(new ArrayBuffer(64 * MiB)));
  assert.deepEqual(hexMap(map), [
    "0+9fc00:1",
    "9fc00+400:2",
    "e0000+20000:2",
    "100000+3f00000:1",
  ]);
  assert.equal(usableEnd(map, 0x100000), 64 * MiB);
  assert.equal(usableEnd(map, 0xe0000), 0xe0000);
});

Deno.test("buildE820 above 3 GiB leaves the PCI hole out and adds RAM above 4 GiB", () => {
  const mem = GuestMemory.allocate(4 * GiB);
  try {
    const map = buildE820(mem);
    assert.deepEqual(hexMap(map), [
      "0+9fc00:1",
      "9fc00+400:2",
      "e0000+20000:2",
      "100000+bff00000:1",
      "100000000+40000000:1",
    ]);
    // Nothing in 3 GiB .. 4 GiB.
    assert.ok(!map.some((e) => e.addr < 4 * GiB && e.addr + e.size > 3 * GiB));
  } finally {
    mem.close();
  }
});

Deno.test("buildE820 carves extra reserved ranges out of RAM", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(64 * MiB));
  const map = buildE820(mem, {
    reserved: [
      { addr: 0x3000000, size: 0x10000, type: E820_ACPI },
      { addr: 0xe0000, size: 0x1000, type: E820_RESERVED }, // already reserved
      { addr: 0x3ff0000, size: 0x10000, type: E820_RESERVED },
    ],
  });
  assert.deepEqual(hexMap(map), [
    "0+9fc00:1",
    "9fc00+400:2",
    "e0000+20000:2",
    "100000+2f00000:1",
    "3000000+10000:3",
    "3010000+fe0000:1",
    "3ff0000+10000:2",
  ]);
  // Sorted, non-overlapping.
  for (let i = 1; i < map.length; i++) {
    assert.ok(map[i - 1].addr + map[i - 1].size <= map[i].addr);
  }
  assert.throws(
    () => buildE820(mem, { reserved: [{ addr: 63 * MiB, size: 2 * MiB, type: E820_RESERVED }] }),
    /not in guest RAM/,
  );
  assert.throws(() => buildE820(mem, { reserved: [{ addr: 0, size: 0, type: 2 }] }), RangeError);
});

Deno.test("buildE820 with RAM smaller than 1 MiB keeps what exists", () => {
  const map = buildE820(GuestMemory.fromBuffer(new ArrayBuffer(0x80000)));
  assert.deepEqual(hexMap(map), ["0+80000:1"]);
  assert.equal(map[0].type, E820_RAM);
});

Deno.test("placeInitrd picks the highest aligned fit, then above 4 GiB if allowed", () => {
  const map = [
    { addr: 0, size: 0x9fc00, type: E820_RAM },
    { addr: 0x100000, size: 0xbff00000, type: E820_RAM },
    { addr: 0x1_0000_0000, size: GiB, type: E820_RAM },
  ];
  assert.equal(placeInitrd(map, 0x1001, { minAddr: 0, maxEnd: 0x8000_0000 }), 0x7fff_e000);
  assert.equal(placeInitrd(map, 4096, { minAddr: 0, maxEnd: 0x1_0000_0000 }), 0xbfff_f000);
  const low = { minAddr: 16 * MiB, maxEnd: 512 * MiB };
  assert.throws(() => placeInitrd(map, 512 * MiB, low), /Initrd too big/);
  assert.equal(placeInitrd(map, 512 * MiB, { ...low, above4G: true }), 0x1_2000_0000);
  assert.throws(() => placeInitrd(map, 2 * GiB, { ...low, above4G: true }), /Initrd too big/);
});
