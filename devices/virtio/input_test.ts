import assert from "node:assert/strict";
import { GuestMemory } from "../../memory/guest_memory.ts";
import { TestDriver, wireDevice } from "./_test_driver.ts";
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_NEEDS_RESET } from "./constants.ts";
import { type VirtioPciDevice, virtioPciSpecOf } from "./pci.ts";
import {
  ABS_X,
  ABS_Y,
  BTN_LEFT,
  BTN_MIDDLE,
  BTN_RIGHT,
  EV_ABS,
  EV_KEY,
  EV_REL,
  INPUT_MAX_REPORT,
  REL_WHEEL,
  TABLET_ABS_MAX,
  VIRTIO_ID_INPUT,
  VIRTIO_INPUT_CFG_ABS_INFO,
  VIRTIO_INPUT_CFG_EV_BITS,
  VIRTIO_INPUT_CFG_ID_DEVIDS,
  VIRTIO_INPUT_CFG_ID_NAME,
  VIRTIO_INPUT_CFG_ID_SERIAL,
  VirtioInput,
} from "./input.ts";
import { until } from "./_net_test_rig.ts";

const BUF = 0x100000;

interface Rig {
  drv: TestDriver;
  mem: GuestMemory;
  input: VirtioInput;
  dev: VirtioPciDevice;
  logs: string[];
}

async function withInput(body: (r: Rig) => Promise<void> | void): Promise<void> {
  const mem = GuestMemory.allocate(4 << 20);
  try {
    const input = new VirtioInput();
    const logs: string[] = [];
    // A spec that went through postMessage, as the vCPU threads get it.
    const spec = structuredClone(virtioPciSpecOf(input));
    const { dev } = wireDevice(input, mem, { log: (m) => logs.push(m), spec });
    input.initConfig(dev.deviceConfig);
    const drv = new TestDriver(mem, dev, { size: 16 });
    await body({ drv, mem, input, dev, logs });
  } finally {
    mem.close();
  }
}

/** What Linux's virtinput_cfg_select does: write select and subsel, read size. */
function select(drv: TestDriver, sel: number, subsel: number): number {
  drv.write(0x2000, 1, sel);
  drv.write(0x2001, 1, subsel);
  return drv.config(2, 1);
}

function unionBytes(drv: TestDriver, n: number): number[] {
  return Array.from({ length: n }, (_, i) => drv.config(8 + i, 1));
}

function readEvent(mem: GuestMemory, addr: number): [number, number, number] {
  const b = mem.slice(addr, 8);
  const v = new DataView(b.buffer, b.byteOffset, 8);
  return [v.getUint16(0, true), v.getUint16(2, true), v.getInt32(4, true)];
}

Deno.test("virtio-input config: name, ids, event bits and axis ranges through select/subsel", async () => {
  await withInput(({ drv }) => {
    assert.equal(drv.dev.configU16(2), 0x1040 + VIRTIO_ID_INPUT);
    assert.equal(drv.dev.configU16(0x0a), 0x0980, "class: input device, other");
    const nameLen = select(drv, VIRTIO_INPUT_CFG_ID_NAME, 0);
    assert.equal(
      new TextDecoder().decode(new Uint8Array(unionBytes(drv, nameLen))),
      "QEMU Virtio Tablet",
    );
    assert.equal(select(drv, VIRTIO_INPUT_CFG_ID_SERIAL, 0), 0, "no serial: size 0");
    assert.equal(select(drv, VIRTIO_INPUT_CFG_ID_DEVIDS, 0), 8);
    assert.deepEqual(unionBytes(drv, 8), [0x06, 0, 0x27, 0x06, 0x03, 0, 0x01, 0]);
    assert.equal(select(drv, VIRTIO_INPUT_CFG_EV_BITS, EV_ABS), 1);
    assert.deepEqual(unionBytes(drv, 1), [(1 << ABS_X) | (1 << ABS_Y)]);
    const keyLen = select(drv, VIRTIO_INPUT_CFG_EV_BITS, EV_KEY);
    const keys = unionBytes(drv, keyLen);
    for (const b of [BTN_LEFT, BTN_RIGHT, BTN_MIDDLE]) {
      assert.ok(keys[b >> 3] & (1 << (b & 7)), `button ${b.toString(16)} offered`);
    }
    assert.equal(keys.filter((x) => x !== 0).length, 1, "only BTN_LEFT..BTN_EXTRA (one byte)");
    const relLen = select(drv, VIRTIO_INPUT_CFG_EV_BITS, EV_REL);
    assert.ok(unionBytes(drv, relLen)[REL_WHEEL >> 3] & (1 << (REL_WHEEL & 7)));
    assert.equal(select(drv, VIRTIO_INPUT_CFG_ABS_INFO, ABS_Y), 20);
    // min, max, fuzz, flat, res as le32: read the max as one 4-byte access.
    assert.equal(drv.config(8 + 4, 4), TABLET_ABS_MAX);
    assert.equal(drv.config(8, 4), 0);
    // Something the tablet lacks: size 0 and a zeroed union (no stale bytes).
    assert.equal(select(drv, VIRTIO_INPUT_CFG_ABS_INFO, 5), 0);
    assert.deepEqual(unionBytes(drv, 8), [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(select(drv, VIRTIO_INPUT_CFG_EV_BITS, 0x17), 0);
    // The config beyond select/subsel stays read-only.
    select(drv, VIRTIO_INPUT_CFG_ID_NAME, 0);
    drv.write(0x2000 + 2, 1, 99);
    drv.write(0x2000 + 8, 4, 0x41414141);
    assert.equal(drv.config(2, 1), 18);
    assert.equal(drv.config(8, 1), "Q".charCodeAt(0));
  });
});

Deno.test("virtio-input: a pointer move and click reach the driver as one report ending in SYN_REPORT", async () => {
  await withInput(async ({ drv, mem, input }) => {
    assert.ok(drv.init(0xffff_ffffn));
    await until(() => (drv.status() & VIRTIO_CONFIG_S_DRIVER_OK) !== 0);
    mem.fill(BUF, 0x1000, 0xee);
    for (let i = 0; i < 8; i++) drv.add([{ addr: BUF + 8 * i, len: 8, write: true }]);
    input.event(EV_ABS, ABS_X, 16384);
    input.event(EV_ABS, ABS_Y, 100);
    input.event(EV_KEY, BTN_LEFT, 1);
    assert.equal(input.sync(), true);
    const used = drv.collect();
    assert.deepEqual(used.map((u) => u.len), [8, 8, 8, 8]);
    const events = used.map((u) => readEvent(mem, BUF + 8 * u.id));
    assert.deepEqual(events, [
      [EV_ABS, ABS_X, 16384],
      [EV_ABS, ABS_Y, 100],
      [EV_KEY, BTN_LEFT, 1],
      [0, 0, 0],
    ]);
    // A wheel step down is a negative relative value.
    input.event(EV_REL, REL_WHEEL, -1);
    assert.equal(input.sync(), true);
    const more = drv.collect();
    assert.deepEqual(more.map((u) => readEvent(mem, BUF + 8 * u.id)), [
      [EV_REL, REL_WHEEL, -1],
      [0, 0, 0],
    ]);
    assert.deepEqual(input.stats, { reports: 2, events: 6, droppedReports: 0, droppedEvents: 0 });
  });
});

Deno.test("virtio-input: with too few buffers posted a report is dropped whole and counted", async () => {
  await withInput(async ({ drv, input }) => {
    // Before the driver is up: dropped, never queued.
    input.event(EV_ABS, ABS_X, 1);
    assert.equal(input.sync(), false);
    assert.ok(drv.init(0xffff_ffffn));
    await until(() => (drv.status() & VIRTIO_CONFIG_S_DRIVER_OK) !== 0);
    // No buffers at all: a thousand reports cost nothing and leave nothing behind.
    for (let i = 0; i < 1000; i++) {
      input.event(EV_ABS, ABS_X, i);
      assert.equal(input.sync(), false);
    }
    // Two buffers, a three-event report: none of it goes, the buffers stay.
    drv.add([{ addr: BUF, len: 8, write: true }]);
    drv.add([{ addr: BUF + 8, len: 8, write: true }]);
    input.event(EV_ABS, ABS_X, 5);
    input.event(EV_ABS, ABS_Y, 5);
    assert.equal(input.sync(), false);
    assert.deepEqual(drv.collect(), []);
    // A report that fits goes through, and nothing stale comes with it.
    input.event(EV_KEY, BTN_RIGHT, 1);
    assert.equal(input.sync(), true);
    assert.equal(drv.collect().length, 2);
    // An over-long report is dropped whole too.
    for (let i = 0; i < 8; i++) drv.add([{ addr: BUF + 8 * i, len: 8, write: true }]);
    for (let i = 0; i < INPUT_MAX_REPORT + 5; i++) input.event(EV_ABS, ABS_X, i);
    assert.equal(input.sync(), false);
    assert.deepEqual(drv.collect(), []);
    assert.equal(input.stats.reports, 1);
    assert.equal(input.stats.droppedReports, 1 + 1000 + 1 + 1);
    assert.equal(input.stats.droppedEvents, 2 + 2000 + 3 + INPUT_MAX_REPORT);
  });
});

Deno.test("virtio-input: a device-readable or short event buffer is a named violation", async () => {
  for (const seg of [{ addr: BUF, len: 8 }, { addr: BUF, len: 4, write: true }]) {
    await withInput(async ({ drv, input, logs }) => {
      assert.ok(drv.init(0xffff_ffffn));
      await until(() => (drv.status() & VIRTIO_CONFIG_S_DRIVER_OK) !== 0);
      drv.add([seg]);
      drv.add([{ addr: BUF + 64, len: 8, write: true }]);
      input.event(EV_KEY, BTN_LEFT, 1);
      assert.equal(input.sync(), false);
      assert.ok(drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET);
      assert.match(logs.join("\n"), /input-event-buffer/);
      // Broken: later reports are dropped, not written.
      input.event(EV_KEY, BTN_LEFT, 0);
      assert.equal(input.sync(), false);
    });
  }
});

Deno.test("virtio-input: an event buffer split over two descriptors gets the event across both", async () => {
  await withInput(async ({ drv, mem, input }) => {
    assert.ok(drv.init(0xffff_ffffn));
    await until(() => (drv.status() & VIRTIO_CONFIG_S_DRIVER_OK) !== 0);
    drv.add([{ addr: BUF, len: 4, write: true }, { addr: BUF + 0x100, len: 4, write: true }]);
    drv.add([{ addr: BUF + 0x200, len: 8, write: true }]);
    input.event(EV_ABS, ABS_Y, -5);
    assert.equal(input.sync(), true);
    assert.equal(drv.collect().length, 2);
    const joined = new Uint8Array([...mem.slice(BUF, 4), ...mem.slice(BUF + 0x100, 4)]);
    const v = new DataView(joined.buffer);
    assert.deepEqual([v.getUint16(0, true), v.getUint16(2, true), v.getInt32(4, true)], [
      EV_ABS,
      ABS_Y,
      -5,
    ]);
  });
});
