import assert from "node:assert/strict";
import { Bus } from "../bus.ts";
import { PciBarAllocator } from "./bar_allocator.ts";
import {
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_VNDR,
  PCI_COMMAND,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
} from "./constants.ts";
import { PciBus } from "./pci_bus.ts";
import { PciDevice } from "./pci_device.ts";
import { VirtioPciDevice } from "../virtio/pci.ts";

function le(n: number, len = 4): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (n >>> (8 * i)) & 0xff;
  return b;
}

function val(b: Uint8Array): number {
  let v = 0;
  for (let i = b.length - 1; i >= 0; i--) v = v * 256 + b[i];
  return v;
}

/** Config access the way a guest does it, through ports 0xCF8/0xCFC on a PIO bus. */
class Cf8 {
  readonly pio = new Bus();
  constructor(readonly bus: PciBus) {
    this.pio.insert(bus.configIo, 0xcf8, 8);
  }
  #select(slot: number, reg: number, enable = true): void {
    this.pio.write(0xcf8, le(((enable ? 0x8000_0000 : 0) | (slot << 11) | (reg & 0xfc)) >>> 0));
  }
  read(slot: number, reg: number, len: number, enable = true): number {
    this.#select(slot, reg, enable);
    const d = new Uint8Array(len);
    this.pio.read(0xcfc + (reg & 3), d);
    return val(d);
  }
  write(slot: number, reg: number, len: number, v: number): void {
    this.#select(slot, reg);
    this.pio.write(0xcfc + (reg & 3), le(v, len));
  }
}

Deno.test("host bridge answers through CONFIG_ADDRESS / CONFIG_DATA", () => {
  const cf8 = new Cf8(new PciBus());
  assert.equal(cf8.read(0, 0, 4), 0x29c0_8086);
  assert.equal(cf8.read(0, 0, 2), 0x8086);
  assert.equal(cf8.read(0, 2, 2), 0x29c0);
  assert.equal(cf8.read(0, 3, 1), 0x29);
  assert.equal(cf8.read(0, 0x0b, 1), 0x06); // class: bridge
  assert.equal(cf8.read(0, 0x0a, 1), 0x00); // subclass: host
  assert.equal(cf8.read(0, 0x0e, 1), 0); // header type 0
  assert.equal(cf8.read(5, 0, 4), 0xffff_ffff); // empty slot
  assert.equal(cf8.read(0, 0, 4, false), 0xffff_ffff); // enable bit clear
  // The address latch reads back.
  cf8.read(0, 0, 4);
  const d = new Uint8Array(4);
  cf8.pio.read(0xcf8, d);
  assert.equal(val(d), 0x8000_0000);
  // Read-only ids ignore writes.
  cf8.write(0, 0, 4, 0x1234_5678);
  assert.equal(cf8.read(0, 0, 4), 0x29c0_8086);
});

Deno.test("BAR sizing, 64-bit BARs, I/O BARs and remap hook", () => {
  const moves: [number, number, number][] = [];
  const dev = new PciDevice({ vendorId: 0x1234, deviceId: 0x5678, classCode: 0xff0000 }, {
    onBarRemap: (bar, from, to) => moves.push([bar, from, to]),
  });
  dev.addBar(0, { size: 0x1000, kind: "mem32" });
  dev.addBar(1, { size: 0x4000, kind: "mem64", prefetchable: true });
  dev.addBar(3, { size: 0x20, kind: "io" });
  const bus = new PciBus();
  const slot = bus.add(dev);
  assert.equal(slot, 1);
  const cf8 = new Cf8(bus);
  new PciBarAllocator().assign(dev);
  assert.equal(dev.barProgrammed(0), 0xc000_0000);
  assert.equal(dev.barProgrammed(1), 0xc000_4000);
  assert.equal(dev.barProgrammed(3), 0xc000);
  assert.equal(dev.barAddress(0), -1); // decode off
  assert.deepEqual(moves, []);
  // Sizing: all-ones reads back the size mask plus type bits.
  for (
    const [reg, mask] of [[0x10, 0xffff_f000], [0x14, 0xffff_c00c], [0x18, 0xffff_ffff], [
      0x1c,
      0xffff_ffe1,
    ], [0x20, 0]]
  ) {
    const saved = cf8.read(slot, reg, 4);
    cf8.write(slot, reg, 4, 0xffff_ffff);
    assert.equal(cf8.read(slot, reg, 4), mask, `BAR at 0x${reg.toString(16)}`);
    cf8.write(slot, reg, 4, saved);
  }
  assert.equal(cf8.read(slot, 0x30, 4), 0); // no ROM
  // Enabling memory decode maps the memory BARs.
  cf8.write(slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
  assert.deepEqual(moves, [[0, -1, 0xc000_0000], [1, -1, 0xc000_4000]]);
  moves.length = 0;
  cf8.write(slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
  assert.deepEqual(moves, [[3, -1, 0xc000]]);
  moves.length = 0;
  // Moving a 64-bit BAR above 4 GiB: low then high dword.
  cf8.write(slot, 0x14, 4, 0xd000_0000);
  cf8.write(slot, 0x18, 4, 0x1);
  assert.deepEqual(moves, [[1, 0xc000_4000, 0xd000_0000], [1, 0xd000_0000, 0x1_d000_0000]]);
  assert.equal(dev.barAddress(1), 0x1_d000_0000);
  // BAR devices take offsets relative to the BAR.
  assert.throws(() => dev.barDevice(2), RangeError);
  const mmio = new Bus();
  mmio.insert(dev.barDevice(0), dev.barAddress(0), 0x1000);
  const d = new Uint8Array(4).fill(0xff);
  assert.ok(mmio.read(0xc000_0010, d));
  assert.deepEqual(d, new Uint8Array(4));
});

Deno.test("command, status and interrupt line honour their write masks", () => {
  const bus = new PciBus();
  const dev = new PciDevice({ vendorId: 0x1234, deviceId: 1, classCode: 0, interruptPin: 1 });
  const slot = bus.add(dev, 7);
  assert.equal(slot, 7);
  assert.throws(() => bus.add(dev, 7), /taken/);
  const cf8 = new Cf8(bus);
  cf8.write(slot, PCI_COMMAND, 2, 0xffff);
  assert.equal(cf8.read(slot, PCI_COMMAND, 2), 0x0547);
  cf8.write(slot, 0x3c, 1, 11);
  assert.equal(cf8.read(slot, 0x3c, 1), 11);
  cf8.write(slot, 0x3d, 1, 4);
  assert.equal(cf8.read(slot, 0x3d, 1), 1); // pin is read-only
  // Status error bits are write-1-to-clear; others read-only.
  dev.configWrite(PCI_STATUS, le(0, 2));
  (dev as unknown as { config: Uint8Array }).config[PCI_STATUS + 1] = 0x80;
  cf8.write(slot, PCI_STATUS, 2, 0x8000);
  assert.equal(cf8.read(slot, PCI_STATUS, 2), 0);
  assert.equal(cf8.read(slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
});

Deno.test("virtio-pci function: ids and the capability chain", () => {
  const bus = new PciBus();
  const dev = new VirtioPciDevice({
    deviceType: 2,
    numQueues: 1,
    queueMaxSize: 256,
    deviceFeatures: 0n,
    configSize: 72,
    pciClass: 0x010000,
  });
  const slot = bus.add(dev);
  const cf8 = new Cf8(bus);
  assert.equal(cf8.read(slot, 0, 4), 0x1042_1af4);
  assert.equal(cf8.read(slot, 8, 1), 1); // revision 1: modern
  assert.equal(cf8.read(slot, 0x2c, 4), 0x1100_1af4);
  assert.equal(cf8.read(slot, 0x3d, 1), 1);
  assert.ok(cf8.read(slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
  const types: number[] = [];
  let msix = 0;
  const seen = new Set<number>();
  for (let p = cf8.read(slot, 0x34, 1); p !== 0; p = cf8.read(slot, p + 1, 1)) {
    assert.ok(!seen.has(p) && p >= 0x40 && p % 4 === 0);
    seen.add(p);
    const id = cf8.read(slot, p, 1);
    if (id === PCI_CAP_ID_VNDR) {
      types.push(cf8.read(slot, p + 3, 1));
      assert.equal(cf8.read(slot, p + 4, 1), 0); // BAR 0
    } else if (id === PCI_CAP_ID_MSIX) msix = p;
  }
  assert.deepEqual(types, [1, 3, 4, 2]);
  assert.ok(msix);
  assert.equal(cf8.read(slot, msix + 2, 2), 1); // 2 vectors, disabled
  assert.equal(cf8.read(slot, msix + 4, 4), 0x4000); // table at BAR 0 + 0x4000
  assert.equal(cf8.read(slot, msix + 8, 4), 0x6000);
  // Read-only MSI-X fields ignore writes; enable and mask stick.
  cf8.write(slot, msix + 2, 2, 0xffff);
  assert.equal(cf8.read(slot, msix + 2, 2), 0xc001);
  // A worker's view over the shared state sees the same registers.
  const twin = new VirtioPciDevice(dev.spec, { state: dev.sharedState });
  assert.equal(twin.configU16(msix + 2), 0xc001);
  assert.ok(twin.msix.enabled);
});
