import assert from "node:assert/strict";
import { HostIovec } from "./iovec.ts";
import { IOV_MAX } from "./types.ts";
import { hostBuffer } from "../sys/fd.ts";

Deno.test("HostIovec holds struct iovec entries in place, growing up to IOV_MAX", () => {
  const v = new HostIovec(2);
  const first = v.address;
  v.push(0x7f12_3456_7000, 4096);
  v.push(2 ** 40 + 3, 2 ** 33 + 5);
  assert.equal(v.address, first); // no growth yet
  v.push(0x1000, 1);
  assert.notEqual(v.address, first); // grew: a new array, old entries copied
  assert.equal(v.count, 3);
  assert.equal(v.bytes, 4096 + 2 ** 33 + 5 + 1);
  assert.equal(v.addr(1), 2 ** 40 + 3);
  assert.equal(v.len(1), 2 ** 33 + 5);
  // The memory at `address` is what the kernel reads: u64 base, u64 length.
  const raw = new BigUint64Array(hostBuffer(v.address, 3 * 16));
  assert.deepEqual([...raw], [
    0x7f12_3456_7000n,
    4096n,
    2n ** 40n + 3n,
    2n ** 33n + 5n,
    0x1000n,
    1n,
  ]);
  v.reset();
  assert.equal(v.count, 0);
  assert.equal(v.bytes, 0);
  for (let i = 0; i < IOV_MAX; i++) v.push(i * 4096, 4096);
  assert.throws(() => v.push(0, 1), RangeError);
});
