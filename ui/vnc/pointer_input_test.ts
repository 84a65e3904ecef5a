import assert from "node:assert/strict";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { GuestMemory } from "../../memory/guest_memory.ts";
import { TestDriver, wireDevice } from "../../devices/virtio/_test_driver.ts";
import { until } from "../../devices/virtio/_net_test_rig.ts";
import { VIRTIO_CONFIG_S_DRIVER_OK } from "../../devices/virtio/constants.ts";
import {
  ABS_X,
  ABS_Y,
  BTN_LEFT,
  BTN_RIGHT,
  EV_ABS,
  EV_KEY,
  EV_REL,
  REL_WHEEL,
  VirtioInput,
} from "../../devices/virtio/input.ts";
import { startVncDisplay } from "./display.ts";
import { scaleAxis, TabletPointerInput, type TabletPort } from "./pointer_input.ts";
import { RfbTestClient } from "./_test_client.ts";
import { makeFb } from "./testdata/fb.ts";

const BUF = 0x100000;

Deno.test("scaleAxis maps the first and last pixel onto the tablet's range ends", () => {
  assert.equal(scaleAxis(0, 1024), 0);
  assert.equal(scaleAxis(1023, 1024), 32767);
  assert.equal(scaleAxis(5000, 1024), 32767, "clamped to the screen");
  assert.equal(scaleAxis(384, 768), Math.floor(384 * 32767 / 767));
  assert.equal(scaleAxis(10, 1), 0);
});

Deno.test("button and wheel changes become key and relative events, one report each", () => {
  const seen: number[][] = [];
  const port: TabletPort = {
    event: (t, c, v) => void seen.push([t, c, v]),
    sync: () => (seen.push([0, 0, 0]), true),
  };
  const geometry = new Int32Array([1, 640, 480, 2560]);
  const ptr = new TabletPointerInput(() => port, geometry);
  ptr.pointer(0b001, 639, 0);
  ptr.pointer(0b101, 639, 0); // right pressed too
  ptr.pointer(0b01000, 0, 0); // both released, wheel up pressed
  ptr.pointer(0b00000, 0, 0); // wheel released: no second notch
  assert.deepEqual(seen, [
    [EV_ABS, ABS_X, 32767],
    [EV_ABS, ABS_Y, 0],
    [EV_KEY, BTN_LEFT, 1],
    [0, 0, 0],
    [EV_ABS, ABS_X, 32767],
    [EV_ABS, ABS_Y, 0],
    [EV_KEY, BTN_RIGHT, 1],
    [0, 0, 0],
    [EV_ABS, ABS_X, 0],
    [EV_ABS, ABS_Y, 0],
    [EV_KEY, BTN_LEFT, 0],
    [EV_KEY, BTN_RIGHT, 0],
    [EV_REL, REL_WHEEL, 1],
    [0, 0, 0],
    [EV_ABS, ABS_X, 0],
    [EV_ABS, ABS_Y, 0],
    [0, 0, 0],
  ]);
  // No tablet (yet): counted, nothing thrown.
  const none = new TabletPointerInput(() => undefined, geometry);
  none.pointer(1, 5, 5);
  assert.equal(none.dropped, 1);
});

Deno.test("a VNC PointerEvent reaches the virtio tablet's event queue in guest memory", async () => {
  const loop = new MainLoop();
  const running = loop.run();
  const mem = GuestMemory.allocate(4 << 20);
  const fb = makeFb(800, 600);
  const tablet = new VirtioInput();
  const { dev } = wireDevice(tablet, mem);
  const drv = new TestDriver(mem, dev, { size: 16 });
  assert.ok(drv.init(0xffff_ffffn));
  await until(() => (drv.status() & VIRTIO_CONFIG_S_DRIVER_OK) !== 0);
  for (let i = 0; i < 16; i++) drv.add([{ addr: BUF + 8 * i, len: 8, write: true }]);
  const display = await startVncDisplay(loop, {
    vnc: { host: "127.0.0.1", port: 0, display: 0 },
    framebuffer: fb.source,
    keyboard: { push: (b) => b.length, translating: () => true },
    tablet: () => tablet,
  });
  const c = await RfbTestClient.connect(display.server.port);
  try {
    assert.equal(await c.handshake(), 0);
    await c.pointer(1, 400, 599);
    const used: { id: number; len: number }[] = [];
    await until(() => (used.push(...drv.collect()), used.length >= 4));
    const events = used.map((u) => {
      const v = new DataView(mem.slice(BUF + 8 * u.id, 8).slice().buffer);
      return [v.getUint16(0, true), v.getUint16(2, true), v.getInt32(4, true)];
    });
    assert.deepEqual(events, [
      [EV_ABS, ABS_X, Math.floor(400 * 32767 / 799)],
      [EV_ABS, ABS_Y, 32767],
      [EV_KEY, BTN_LEFT, 1],
      [0, 0, 0],
    ]);
    assert.equal(tablet.stats.reports, 1);
  } finally {
    c.close();
    await display.close();
    loop.stop();
    await running;
    loop.close();
    mem.close();
  }
});
