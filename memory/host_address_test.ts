import assert from "node:assert/strict";
import { GuestMemory, GuestMemoryError } from "./guest_memory.ts";

Deno.test("hostAddressNumber is hostAddress as a number, with the same range checks", () => {
  const m = GuestMemory.allocate(4 << 20);
  try {
    for (const [addr, len] of [[0, 1], [4096, 4096], [(4 << 20) - 512, 512]]) {
      const n = m.hostAddressNumber(addr, len);
      assert.equal(BigInt(n), m.hostAddress(addr, len));
      assert.ok(Number.isSafeInteger(n));
    }
    for (const [addr, len] of [[(4 << 20) - 511, 512], [4 << 20, 1], [-1, 1], [0.5, 1]]) {
      assert.throws(() => m.hostAddressNumber(addr, len), GuestMemoryError);
    }
    // A buffer-backed view has no host address to give.
    const b = GuestMemory.fromBuffer(new ArrayBuffer(4096));
    assert.throws(() => b.hostAddressNumber(0, 16), GuestMemoryError);
  } finally {
    m.close();
  }
});
