// screen_info for a linear framebuffer, field by field, at Linux's offsets.
import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import {
  SCREEN_INFO,
  VIDEO_CAPABILITY_64BIT_BASE,
  VIDEO_TYPE_EFI,
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
  assert.equal(mem.readU8(at(SCREEN_INFO.orig_video_isVGA)), VIDEO_TYPE_EFI);
  assert.equal(mem.readU16(at(0x12)), 1024);
  assert.equal(mem.readU16(at(0x14)), 768);
  assert.equal(mem.readU16(at(0x16)), 32);
  assert.equal(mem.readU32(at(0x18)), 0xfd00_0000);
  assert.equal(mem.readU32(at(0x1c)), 3 << 20); // bytes, as efifb reads it
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

Deno.test("screen_info offsets and VIDEO_TYPE_EFI match <linux/screen_info.h>", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fields = Object.keys(SCREEN_INFO).filter((k) => k !== "size");
    const lines = fields.map((k) => `printf("${k} %zu\\n", offsetof(struct screen_info, ${k}));`);
    await Deno.writeTextFile(
      `${dir}/p.c`,
      `#include <stdio.h>\n#include <stddef.h>\n#include <linux/screen_info.h>\nint main(void){\n${
        lines.join("\n")
      }\nprintf("size %zu\\n", sizeof(struct screen_info));\nprintf("efi %d\\n", VIDEO_TYPE_EFI);\nreturn 0;}\n`,
    );
    const cc = await new Deno.Command("cc", {
      args: ["-o", `${dir}/p`, `${dir}/p.c`],
      stderr: "piped",
    }).output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const out = new TextDecoder().decode((await new Deno.Command(`${dir}/p`).output()).stdout);
    const got = new Map(
      out.trim().split("\n").map((l) => l.split(" ")).map(([k, v]) => [k, Number(v)]),
    );
    for (const k of fields) assert.equal(got.get(k), SCREEN_INFO[k as keyof typeof SCREEN_INFO], k);
    assert.equal(got.get("size"), SCREEN_INFO.size);
    assert.equal(got.get("efi"), VIDEO_TYPE_EFI);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
