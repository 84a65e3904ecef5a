import assert from "node:assert/strict";
import { GuestMemory } from "../../memory/guest_memory.ts";
import {
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
} from "../pci/constants.ts";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { CountingSink, TestDriver, wireDevice } from "./_test_driver.ts";
import {
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_COMMON_Q_MSIX,
} from "./constants.ts";
import { VirtioPciDevice } from "./pci.ts";
import { fillRandom, VIRTIO_ID_RNG, VirtioRng } from "./rng.ts";
import { until } from "./_net_test_rig.ts";

const BUF = 0x100000;

async function withRng(
  body: (r: { drv: TestDriver; mem: GuestMemory; rng: VirtioRng; logs: string[] }) => Promise<void>,
  rate?: number,
): Promise<void> {
  const loop = new MainLoop();
  const done = loop.run();
  const mem = GuestMemory.allocate(4 << 20);
  try {
    const rng = new VirtioRng({ loop, rateBytesPerSec: rate });
    const logs: string[] = [];
    const { dev } = wireDevice(rng, mem, { log: (m) => logs.push(m) });
    const drv = new TestDriver(mem, dev, { size: 16 });
    assert.ok(drv.init(0xffff_ffffn));
    await body({ drv, mem, rng, logs });
  } finally {
    loop.stop();
    await done;
    loop.close();
    mem.close();
  }
}

Deno.test("virtio-rng fills every writable segment with fresh random bytes", async () => {
  await withRng(async ({ drv, mem, rng }) => {
    assert.equal(drv.dev.configU16(2), 0x1040 + VIRTIO_ID_RNG);
    mem.fill(BUF, 0x4000, 0);
    drv.add([{ addr: BUF, len: 64, write: true }]);
    drv.add([{ addr: BUF + 0x1000, len: 16, write: true }, {
      addr: BUF + 0x2000,
      len: 48,
      write: true,
    }]);
    drv.kick();
    const used: { id: number; len: number }[] = [];
    await until(() => (used.push(...drv.collect()), used.length === 2));
    assert.deepEqual(used.map((u) => u.len), [64, 64]);
    const a = mem.slice(BUF, 64).slice();
    const b = new Uint8Array([...mem.slice(BUF + 0x1000, 16), ...mem.slice(BUF + 0x2000, 48)]);
    assert.ok(a.some((x) => x !== 0) && b.some((x) => x !== 0));
    assert.notDeepEqual(a, b);
    assert.equal(rng.stats.bytes, 128);
  });
});

Deno.test("virtio-rng rate limit defers requests instead of refusing them", async () => {
  await withRng(async ({ drv, rng }) => {
    const t0 = Date.now();
    for (let i = 0; i < 4; i++) drv.add([{ addr: BUF + i * 0x1000, len: 1000, write: true }]);
    drv.kick();
    const used: { id: number; len: number }[] = [];
    await until(() => (used.push(...drv.collect()), used.length >= 2));
    assert.equal(used.length, 2);
    assert.ok(Date.now() - t0 < 400, "the first second's budget is served at once");
    await until(() => (used.push(...drv.collect()), used.length === 4), 5000);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 800, `4000 bytes at 2000 B/s took only ${elapsed} ms`);
    assert.ok(rng.stats.deferred >= 1);
    assert.equal(used.reduce((s, u) => s + u.len, 0), 4000);
  }, 2000);
});

Deno.test("virtio-rng: a device-readable buffer marks the device broken", async () => {
  await withRng(async ({ drv, logs }) => {
    drv.add([{ addr: BUF, len: 16 }, { addr: BUF + 16, len: 16, write: true }]);
    drv.kick();
    await until(() => (drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0);
    assert.match(logs[0], /device-readable/);
  });
});

Deno.test("fillRandom fills large buffers completely", () => {
  const b = new Uint8Array(1 << 20);
  fillRandom(b);
  // 1 MiB of zeros in the last 4 KiB would mean a short fill.
  assert.ok(b.subarray(b.length - 4096).some((x) => x !== 0));
});

Deno.test("a device without config has no DEVICE_CFG capability (Linux rejects a zero-length one)", () => {
  const capTypes = (configSize: number) => {
    const dev = new VirtioPciDevice({
      deviceType: VIRTIO_ID_RNG,
      numQueues: 1,
      queueMaxSize: 64,
      deviceFeatures: 0n,
      configSize,
      pciClass: 0xff0000,
    });
    const types: number[] = [];
    const b = new Uint8Array(1);
    dev.configRead(0x34, b);
    for (let p = b[0]; p !== 0;) {
      const cap = new Uint8Array(4);
      dev.configRead(p, cap);
      if (cap[0] === 0x09) types.push(cap[3]); // vendor-specific: cfg_type
      p = cap[1];
    }
    return types.sort();
  };
  assert.deepEqual(capTypes(0), [1, 2, 3]);
  assert.deepEqual(capTypes(8), [1, 2, 3, 4]);
});

Deno.test("queueIrqFd: a kernel data path gets the vector's irqfd only with MSI-X on", () => {
  const loop = new MainLoop();
  const mem = GuestMemory.allocate(4 << 20);
  try {
    const rng = new VirtioRng({ loop });
    const sink = Object.assign(new CountingSink(), { msixFd: (v: number) => 100 + v });
    const { dev, backend } = wireDevice(rng, mem, { interrupt: sink });
    const drv = new TestDriver(mem, dev, { size: 16 });
    assert.ok(drv.init(0xffff_ffffn, { vector: 1 }));
    assert.equal(backend.queueIrqFd(0), null, "INTx: no irqfd");
    const cap = dev.msix.capOffset;
    dev.configWrite(PCI_COMMAND, new Uint8Array([PCI_COMMAND_MEMORY, 0]));
    dev.configWrite(cap + PCI_MSIX_FLAGS, new Uint8Array([0, PCI_MSIX_FLAGS_ENABLE >> 8]));
    assert.ok(drv.init(0xffff_ffffn, { vector: 1 }));
    // Masked or not: the VMM disarms a masked vector's irqfd (vhost_net_mask_test.ts).
    assert.equal(backend.queueIrqFd(0), 101);
    drv.write(0x4000 + 16 + 12, 4, 0); // unmask vector 1
    assert.equal(backend.queueIrqFd(0), 101);
    drv.write(VIRTIO_PCI_COMMON_Q_MSIX, 2, VIRTIO_MSI_NO_VECTOR); // queue 0 is selected
    assert.equal(backend.queueIrqFd(0), null, "no vector: no irqfd");
  } finally {
    loop.close();
    mem.close();
  }
});
