import assert from "node:assert/strict";
import { formatSize, parseSize } from "./size.ts";

Deno.test("parseSize takes QEMU's forms", () => {
  assert.equal(parseSize("256M"), 256 << 20);
  assert.equal(parseSize("256m"), 256 << 20);
  assert.equal(parseSize("1G"), 1 << 30);
  assert.equal(parseSize("1.5G"), 1.5 * (1 << 30));
  assert.equal(parseSize("512"), 512 << 20);
  assert.equal(parseSize("64k"), 65536);
  assert.equal(parseSize("2GiB"), 2 * (1 << 30));
  assert.equal(parseSize("1T"), 1024 ** 4);
});

Deno.test("parseSize rejects what is not a size", () => {
  for (const bad of ["", "M", "-1G", "1X", "1 G G", "abc", "0x100", "1e9"]) {
    assert.equal(parseSize(bad), undefined, bad);
  }
});

Deno.test("formatSize", () => {
  assert.equal(formatSize(256 << 20), "256M");
  assert.equal(formatSize(1 << 30), "1G");
  assert.equal(formatSize(1000), "1000B");
});
