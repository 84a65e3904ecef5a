// The framebuffer's memory is one memfd: writes through the host mapping
// are what another mapping of the same fd reads (as a display worker would).
import assert from "node:assert/strict";
import { Framebuffer, FRAMEBUFFER_GPA } from "./framebuffer.ts";
import { hostBuffer, MAP_SHARED, mmap, munmap, PROT_READ } from "../sys/fd.ts";

Deno.test("geometry, page-rounded size, and a second mapping sees the pixels", () => {
  const fb = Framebuffer.allocate(100, 10);
  try {
    assert.equal(fb.info.stride, 400);
    assert.equal(fb.info.size, 4096);
    assert.equal(fb.info.guestAddr, FRAMEBUFFER_GPA);
    new Uint32Array(fb.buffer())[101] = 0x00ff_8000;
    const other = mmap(fb.info.size, { prot: PROT_READ, flags: MAP_SHARED, fd: fb.info.fd });
    try {
      assert.equal(new Uint32Array(hostBuffer(other, fb.info.size))[101], 0x00ff_8000);
    } finally {
      munmap(other, fb.info.size);
    }
  } finally {
    fb.close();
  }
});

Deno.test("sizes that do not fit are RangeErrors", () => {
  assert.throws(() => Framebuffer.allocate(0, 10), RangeError);
  assert.throws(() => Framebuffer.allocate(8192, 8192), /at most/);
});
