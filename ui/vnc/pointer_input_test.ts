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
import { type MousePort, PointerInput, scaleAxis, type TabletPort } from "./pointer_input.ts";
import { I8042, I8042_STATE_BYTES } from "../../devices/legacy/i8042.ts";
import { FakeIrqLine } from "../../devices/irq.ts";
import { RecordingSystemEvents } from "../../devices/legacy/system_events.ts";
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
  const ptr = new PointerInput(() => port, geometry);
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
  const none = new PointerInput(() => undefined, geometry);
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

Deno.test("without a tablet, pointer events become relative PS/2 motion, buttons and wheel", () => {
  const moves: number[][] = [];
  const mouse: MousePort = { move: (dx, dy, dz, b) => void moves.push([dx, dy, dz, b]) };
  const ptr = new PointerInput(() => undefined, new Int32Array([1, 640, 480, 2560]), { mouse });
  ptr.pointer(0, 100, 100); // the first event only sets the position
  ptr.pointer(0, 110, 95);
  ptr.pointer(0b100, 110, 95); // right: PS/2 bit 1
  ptr.pointer(0b010, 108, 95); // middle: PS/2 bit 2
  ptr.pointer(0b01000, 108, 95); // wheel up: -1
  ptr.pointer(0b00000, 108, 95); // wheel released, nothing else: no event
  ptr.pointer(0b10001, 108, 95); // wheel down (+1) with left held
  assert.deepEqual(moves, [
    [10, -5, 0, 0],
    [0, 0, 0, 0b010],
    [-2, 0, 0, 0b100],
    [0, 0, -1, 0],
    [0, 0, 1, 0b001],
  ]);
  assert.equal(ptr.dropped, 0);
});

Deno.test("a VNC PointerEvent becomes PS/2 mouse packets on the i8042 when there is no tablet", async () => {
  const loop = new MainLoop();
  const running = loop.run();
  const region = {
    sab: new SharedArrayBuffer(I8042_STATE_BYTES),
    offset: 0,
    length: I8042_STATE_BYTES,
  };
  I8042.initState(region);
  const auxIrq = new FakeIrqLine();
  const kbc = new I8042(region, {
    kbdIrq: new FakeIrqLine(),
    auxIrq,
    events: new RecordingSystemEvents(),
  });
  // psmouse's set-up: the IntelliMouse knock, then enable reporting.
  for (const b of [0xf3, 200, 0xf3, 100, 0xf3, 80, 0xf4]) {
    kbc.writeCommand(0xd4);
    kbc.writeData(b);
  }
  const read = () => {
    const out: number[] = [];
    while (kbc.readStatus() & 0x01) {
      assert.equal(kbc.readStatus() & 0x20, 0x20, "AUX data");
      out.push(kbc.readData());
    }
    return out;
  };
  assert.deepEqual(read(), [0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa]);
  const fb = makeFb(800, 600);
  const display = await startVncDisplay(loop, {
    vnc: { host: "127.0.0.1", port: 0, display: 0 },
    framebuffer: fb.source,
    keyboard: { push: (b) => b.length, translating: () => true },
    mouse: { move: (dx, dy, dz, b) => kbc.pushMouse(dx, dy, dz, b) },
  });
  const c = await RfbTestClient.connect(display.server.port);
  try {
    assert.equal(await c.handshake(), 0);
    await c.pointer(0, 400, 300);
    await c.pointer(1, 403, 290); // 3 right, 10 up, left pressed
    await c.pointer(1 << 4, 403, 290); // left released, wheel down
    const bytes: number[] = [];
    await until(() => (bytes.push(...read()), bytes.length >= 8));
    assert.deepEqual(bytes, [0x09, 3, 10, 0, 0x08, 0, 0, 1]);
    assert.ok(auxIrq.raised >= 8 + 7, "IRQ 12 for every byte");
  } finally {
    c.close();
    await display.close();
    loop.stop();
    await running;
    loop.close();
  }
});
