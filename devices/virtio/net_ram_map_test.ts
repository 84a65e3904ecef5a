import assert from "node:assert/strict";
import { GuestMemory, GuestMemoryError } from "../../memory/guest_memory.ts";
import { GuestRamMap, IOV_BYTES } from "./net_ram_map.ts";

Deno.test("GuestRamMap bytes and iovecs: the same RAM as GuestMemory, and nothing outside it", () => {
  const mem = GuestMemory.allocate(1 << 20);
  try {
    const map = new GuestRamMap();
    map.load(mem);
    mem.writeU8(0x1234, 0x5a);
    assert.equal(map.readU8(0x1234), 0x5a);
    map.writeU8(0xfffff, 0xa5);
    assert.equal(mem.readU8(0xfffff), 0xa5, "the last byte of RAM");
    assert.throws(() => map.readU8(1 << 20), GuestMemoryError);
    assert.throws(() => map.writeU8(-1, 0), GuestMemoryError);
    assert.throws(() => map.readU8(Number.NaN), GuestMemoryError);
    const v = new DataView(new ArrayBuffer(IOV_BYTES));
    map.setIovec(v, 0, 0x2000, 64);
    assert.equal(v.getBigUint64(0, true), mem.hostAddress(0x2000, 64));
    assert.equal(v.getUint32(8, true), 64);
    assert.throws(() => map.setIovec(v, 0, (1 << 20) - 8, 16), GuestMemoryError);
  } finally {
    mem.close();
  }
});
