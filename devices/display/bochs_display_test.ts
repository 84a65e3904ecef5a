import assert from "node:assert/strict";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { VncServer } from "../../ui/vnc/server.ts";
import { RfbTestClient } from "../../ui/vnc/_test_client.ts";
import { makeFb } from "../../ui/vnc/testdata/fb.ts";
import {
  BochsDisplay,
  VBE_DISPI_ENABLED,
  VBE_DISPI_GETCAPS,
  VBE_DISPI_INDEX_BANK,
  VBE_DISPI_INDEX_BPP,
  VBE_DISPI_INDEX_ENABLE,
  VBE_DISPI_INDEX_ID,
  VBE_DISPI_INDEX_VIDEO_MEMORY_64K,
  VBE_DISPI_INDEX_VIRT_HEIGHT,
  VBE_DISPI_INDEX_VIRT_WIDTH,
  VBE_DISPI_INDEX_X_OFFSET,
  VBE_DISPI_INDEX_XRES,
  VBE_DISPI_INDEX_Y_OFFSET,
  VBE_DISPI_INDEX_YRES,
  VBE_DISPI_LFB_ENABLED,
} from "./bochs_display.ts";

const VRAM = 16 << 20;

function rig(vramSize = VRAM) {
  const geometry = new SharedArrayBuffer(20);
  const g = new Int32Array(geometry);
  g.set([1, 1024, 768, 4096, 0]);
  const logs: string[] = [];
  const vga = new BochsDisplay({ geometry, vramSize, log: (l) => logs.push(l) });
  return { vga, g, logs, geometry };
}

function put(vga: BochsDisplay, index: number, value: number): void {
  vga.barWrite(2, 0x500 + 2 * index, new Uint8Array([value & 0xff, value >> 8]));
}

function get(vga: BochsDisplay, index: number): number {
  const d = new Uint8Array(2);
  vga.barRead(2, 0x500 + 2 * index, d);
  return d[0] | (d[1] << 8);
}

/** What Linux's bochs_hw_setmode and bochs_hw_setbase write (drivers/gpu/drm/tiny/bochs.c). */
function linuxSetMode(vga: BochsDisplay, w: number, h: number, baseOffset = 0): void {
  vga.barWrite(2, 0x400, new Uint8Array([0x20])); // unblank through the VGA ports
  put(vga, VBE_DISPI_INDEX_ENABLE, 0);
  put(vga, VBE_DISPI_INDEX_BPP, 32);
  put(vga, VBE_DISPI_INDEX_XRES, w);
  put(vga, VBE_DISPI_INDEX_YRES, h);
  put(vga, VBE_DISPI_INDEX_BANK, 0);
  put(vga, VBE_DISPI_INDEX_VIRT_WIDTH, w);
  put(vga, VBE_DISPI_INDEX_VIRT_HEIGHT, Math.floor(VRAM / (w * 4)));
  put(vga, VBE_DISPI_INDEX_X_OFFSET, 0);
  put(vga, VBE_DISPI_INDEX_Y_OFFSET, 0);
  put(vga, VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
  const stride = w * 4;
  put(vga, VBE_DISPI_INDEX_VIRT_WIDTH, w);
  put(vga, VBE_DISPI_INDEX_X_OFFSET, (baseOffset % stride) / 4);
  put(vga, VBE_DISPI_INDEX_Y_OFFSET, Math.floor(baseOffset / stride));
}

Deno.test("bochs-display: PCI identity, BARs and the dispi ID the Linux driver checks", () => {
  const { vga } = rig();
  assert.equal(vga.configU16(0), 0x1234);
  assert.equal(vga.configU16(2), 0x1111);
  assert.equal(vga.configU16(0x0a), 0x0380);
  const size = (bar: number) => {
    vga.configWrite(0x10 + 4 * bar, new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    const v = vga.configU32(0x10 + 4 * bar);
    return { size: (~(v & ~0xf) >>> 0) + 1, prefetch: (v & 8) !== 0 };
  };
  assert.deepEqual(size(0), { size: VRAM, prefetch: true });
  assert.deepEqual(size(2), { size: 0x1000, prefetch: false });
  assert.equal(get(vga, VBE_DISPI_INDEX_ID), 0xb0c5);
  assert.equal(get(vga, VBE_DISPI_INDEX_ID) & 0xfff0, 0xb0c0, "bochs_hw_init's ID check");
  assert.equal(get(vga, VBE_DISPI_INDEX_VIDEO_MEMORY_64K) * 65536, VRAM);
  put(vga, VBE_DISPI_INDEX_VIDEO_MEMORY_64K, 1);
  assert.equal(get(vga, VBE_DISPI_INDEX_VIDEO_MEMORY_64K), 256, "read-only");
  // A 4-byte read spans two registers, little-endian.
  const d = new Uint8Array(4);
  vga.barRead(2, 0x500, d);
  assert.deepEqual([...d], [0xc5, 0xb0, 0, 0]);
  put(vga, VBE_DISPI_INDEX_ENABLE, VBE_DISPI_GETCAPS);
  assert.deepEqual([1, 2, 3].map((i) => get(vga, i)), [4096, 4096, 32]);
});

Deno.test("bochs-display: the driver's mode set reaches the framebuffer geometry, base offset included", () => {
  const { vga, g, logs } = rig();
  const gen = g[0];
  linuxSetMode(vga, 800, 600);
  assert.deepEqual([...g.slice(1)], [800, 600, 3200, 0]);
  assert.ok(g[0] > gen, "generation bumped");
  const after = g[0];
  linuxSetMode(vga, 800, 600);
  assert.equal(g[0], after, "the same mode again: no new generation (no needless full refresh)");
  // A scan-out buffer further into video memory (drm_gem_vram places buffers anywhere).
  linuxSetMode(vga, 1280, 720, 1280 * 4 * 720);
  assert.deepEqual([...g.slice(1)], [1280, 720, 5120, 5120 * 720]);
  assert.deepEqual(logs, []);
});

Deno.test("bochs-display: a mode the display cannot show leaves the last one and logs once", () => {
  const { vga, g, logs } = rig();
  linuxSetMode(vga, 640, 480);
  const before = [...g];
  put(vga, VBE_DISPI_INDEX_BPP, 16); // 16 bpp while enabled
  linuxSetMode(vga, 4000, 4000); // 64 MB of pixels in 16 MiB
  put(vga, VBE_DISPI_INDEX_BPP, 32);
  put(vga, VBE_DISPI_INDEX_Y_OFFSET, 0xffff); // scan-out beyond video memory
  assert.deepEqual([...g], before);
  assert.equal(logs.length, 1);
  assert.match(logs[0], /cannot be shown/);
});

Deno.test("bochs-display: every vCPU thread's instance shares the registers", () => {
  const { vga, geometry, g } = rig();
  const other = new BochsDisplay({ geometry, vramSize: VRAM, state: vga.sharedState });
  put(vga, VBE_DISPI_INDEX_XRES, 1024);
  put(vga, VBE_DISPI_INDEX_YRES, 768);
  put(vga, VBE_DISPI_INDEX_BPP, 32);
  put(other, VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED);
  assert.equal(get(other, VBE_DISPI_INDEX_XRES), 1024);
  assert.equal(get(vga, VBE_DISPI_INDEX_ENABLE), VBE_DISPI_ENABLED);
  assert.equal(vga.configU16(2), other.configU16(2));
  assert.deepEqual([...g.slice(1)], [1024, 768, 4096, 0]);
});

Deno.test("bochs-display: a guest mode switch is a DesktopSize and the picture from the new base", async () => {
  const fb = makeFb(320, 200, VRAM);
  const vga = new BochsDisplay({ geometry: fb.source.geometry, vramSize: VRAM });
  const loop = new MainLoop();
  const running = loop.run();
  const server = await VncServer.start(loop, {
    listen: { host: "127.0.0.1", port: 0 },
    framebuffer: fb.source,
    refreshMs: 10,
    encoder: "inline",
  });
  const c = await RfbTestClient.connect(server.port);
  try {
    await c.handshake();
    assert.deepEqual([c.width, c.height], [320, 200]);
    await c.setEncodings([0, -223]);
    await c.requestUpdate(false);
    await c.message();
    // The guest draws into a buffer 1 MiB in, then scans out from there at 640x480.
    const base = 1 << 20;
    for (let y = 0; y < 480; y++) {
      for (let x = 0; x < 640; x++) fb.px[base / 4 + y * 640 + x] = (x * 7) ^ (y << 8);
    }
    linuxSetMode(vga, 640, 480, base);
    await c.requestUpdate(true);
    await c.message();
    assert.equal(c.seen[0], -223);
    assert.deepEqual([c.width, c.height], [640, 480]);
    let bad = 0;
    for (let y = 0; y < 480; y++) {
      for (let x = 0; x < 640; x++) {
        if ((c.screen[y * 640 + x] & 0xffffff) !== (((x * 7) ^ (y << 8)) & 0xffffff)) bad++;
      }
    }
    assert.equal(bad, 0, `${bad} pixels differ`);
  } finally {
    c.close();
    await server.close();
    loop.stop();
    await running;
    loop.close();
  }
});
