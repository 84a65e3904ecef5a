import assert from "node:assert/strict";
import { SCREEN_INFO, SCREEN_INFO_SIZE, VIDEO_TYPE_EFI, writeScreenInfo } from "./screen_info.ts";

Deno.test("screen_info layout matches <linux/screen_info.h>", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const lines = Object.keys(SCREEN_INFO).map((k) =>
      `printf("${k} %zu %zu\\n", offsetof(struct screen_info, ${k}), sizeof(((struct screen_info *)0)->${k}));`
    );
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
    for (const line of out.trim().split("\n")) {
      const [k, a, b] = line.split(" ");
      if (k === "size") assert.equal(Number(a), SCREEN_INFO_SIZE);
      else if (k === "efi") assert.equal(Number(a), VIDEO_TYPE_EFI);
      else {
        const f = SCREEN_INFO[k as keyof typeof SCREEN_INFO];
        assert.deepEqual([f.offset, f.size], [Number(a), Number(b)], k);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeScreenInfo announces an EFI x8r8g8b8 framebuffer and refuses one that does not fit", () => {
  const v = new DataView(new ArrayBuffer(4096));
  v.setUint8(0x0f, 0xaa);
  writeScreenInfo(v, 0, {
    base: 0xfd00_0000,
    size: 16 << 20,
    width: 1024,
    height: 768,
    stride: 4096,
  });
  assert.equal(v.getUint8(0x0f), 0x70);
  assert.equal(v.getUint16(0x12, true), 1024);
  assert.equal(v.getUint16(0x14, true), 768);
  assert.equal(v.getUint16(0x16, true), 32);
  assert.equal(v.getUint32(0x18, true), 0xfd00_0000);
  assert.equal(v.getUint32(0x1c, true), 16 << 20);
  assert.equal(v.getUint16(0x24, true), 4096);
  assert.deepEqual([0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b].map((o) => v.getUint8(o)), [
    8,
    16,
    8,
    8,
    8,
    0,
  ]);
  assert.equal(v.getUint32(0x36, true), 0);
  writeScreenInfo(v, 0, { base: 0x1_2000_0000, size: 1 << 20, width: 16, height: 16, stride: 64 });
  assert.equal(v.getUint32(0x18, true), 0x2000_0000);
  assert.equal(v.getUint32(0x3a, true), 1);
  assert.equal(v.getUint32(0x36, true), 2);
  assert.throws(
    () => writeScreenInfo(v, 0, { base: 0, size: 4096, width: 64, height: 64, stride: 256 }),
    RangeError,
  );
});
