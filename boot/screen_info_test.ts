// screen_info for a linear framebuffer, field by field, at Linux's offsets.
import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import {
  SCREEN_INFO,
  VIDEO_CAPABILITY_64BIT_BASE,
  VIDEO_TYPE_VLFB,
  writeScreenInfo,
} from "./screen_info.ts";

Deno.test("a 1024x768 x8r8g8b8 framebuffer below 4 GiB", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(0x8000));
  mem.fill(0x7000, 0x1000, 0xaa);
  writeScreenInfo(mem, 0x7000, {
    guestAddr: 0xfd00_0000,
    size: 1024 * 768 * 4,
    width: 1024,
    height: 768,
    stride: 4096,
  });
  const at = (o: number) => 0x7000 + o;
  assert.equal(mem.readU8(at(SCREEN_INFO.orig_video_isVGA)), VIDEO_TYPE_VLFB);
  assert.equal(mem.readU16(at(0x12)), 1024);
  assert.equal(mem.readU16(at(0x14)), 768);
  assert.equal(mem.readU16(at(0x16)), 32);
  assert.equal(mem.readU32(at(0x18)), 0xfd00_0000);
  assert.equal(mem.readU32(at(0x1c)), 48); // 3 MiB in 64 KiB units
  assert.equal(mem.readU16(at(0x24)), 4096);
  // red 8@16, green 8@8, blue 8@0, reserved 8@24
  assert.deepEqual([...mem.slice(at(0x26), 8)], [8, 16, 8, 8, 8, 0, 8, 24]);
  assert.equal(mem.readU32(at(0x36)), 0);
  // The rest of screen_info is zeroed; what follows it is untouched.
  assert.equal(mem.readU8(at(0x00)), 0);
  assert.equal(mem.readU8(at(0x40)), 0xaa);
});

Deno.test("a base above 4 GiB sets 64BIT_BASE and ext_lfb_base", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(0x8000));
  writeScreenInfo(mem, 0x7000, {
    guestAddr: 0x1_2000_0000,
    size: 0x10000,
    width: 64,
    height: 64,
    stride: 256,
  });
  assert.equal(mem.readU32(0x7000 + SCREEN_INFO.lfb_base), 0x2000_0000);
  assert.equal(mem.readU32(0x7000 + SCREEN_INFO.capabilities), VIDEO_CAPABILITY_64BIT_BASE);
  assert.equal(mem.readU32(0x7000 + SCREEN_INFO.ext_lfb_base), 1);
});
