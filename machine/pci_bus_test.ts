// The vCPU side of bus 0 without KVM: config ports, the BAR-following MMIO
// window, eventfd kicks, INTx, ioeventfds that follow BAR 0, and exactly one
// GSI routing update per guest update of the MSI-X table or control bits.
import assert from "node:assert/strict";
import {
  buildPciBus,
  gsiRoutes,
  newIoeventfdState,
  type PciFunctionArgs,
  type PciVmOps,
} from "./pci_devices.ts";
import { Bus } from "../devices/bus.ts";
import type { DeviceContext } from "../devices/device_spec.ts";
import { FakeIrqLine } from "../devices/irq.ts";
import { PciBarAllocator } from "../devices/pci/bar_allocator.ts";
import { PciBus } from "../devices/pci/pci_bus.ts";
import { VIRTIO_PCI_COMMON_NUMQ } from "../devices/virtio/constants.ts";
import {
  VIRTIO_PCI_MSIX_TABLE_OFFSET,
  VIRTIO_PCI_NOTIFY_OFFSET,
  VirtioPciDevice,
} from "../devices/virtio/pci.ts";
import { closeFd, eventFd, eventFdRead } from "../sys/fd.ts";
import type { GsiRoute, IoEventFd } from "../kvm/vm.ts";

const SPEC = {
  deviceType: 2,
  numQueues: 2,
  queueMaxSize: 64,
  deviceFeatures: 0n,
  configSize: 8,
  pciClass: 0x010000,
};

class RecordingVm implements PciVmOps {
  routings: GsiRoute[][] = [];
  ioeventfds: { addr: number; fd: number; deassign: boolean }[] = [];
  setGsiRouting(routes: readonly GsiRoute[]): void {
    this.routings.push([...routes]);
  }
  ioeventfd(e: IoEventFd, deassign = false): void {
    this.ioeventfds.push({ addr: e.addr, fd: e.fd, deassign });
  }
  irqfd(): void {}
}

function rig() {
  // The builder's side: registers, a slot, a BAR, fds.
  const main = new VirtioPciDevice(SPEC);
  const machineBus = new PciBus();
  const slot = machineBus.add(main);
  new PciBarAllocator().assign(main);
  const fds = [eventFd(), eventFd(), eventFd(), eventFd(), eventFd(), eventFd()];
  const fn: PciFunctionArgs = {
    spec: SPEC,
    state: main.sharedState,
    slot,
    notifyFds: [fds[0], fds[1]],
    controlFd: fds[2],
    intxGsi: 17,
    msiGsiBase: 24,
    msixFds: [fds[3], fds[4], fds[5]],
    ioeventfdBase: newIoeventfdState(),
  };
  const lines = new Map<number, FakeIrqLine>();
  const ctx = {
    irq(gsi: number) {
      if (!lines.has(gsi)) lines.set(gsi, new FakeIrqLine());
      return lines.get(gsi)!;
    },
  } as unknown as DeviceContext;
  const vm = new RecordingVm();
  // A vCPU thread's side.
  const maps = buildPciBus(
    {
      vmFd: -1,
      addressState: machineBus.addressState,
      hostBridge: machineBus.hostBridge.state(),
      functions: [fn],
    },
    ctx,
    vm,
  );
  const pio = new Bus();
  const mmio = new Bus();
  for (const m of maps) (m.space === "pio" ? pio : mmio).insert(m.device, m.base, m.size);
  const u32 = (v: number) => new Uint8Array(new Uint32Array([v]).buffer);
  const cfgWrite = (reg: number, bytes: Uint8Array) => {
    pio.write(0xcf8, u32(0x8000_0000 | (slot << 11) | (reg & ~3)));
    pio.write(0xcfc + (reg & 3), bytes);
  };
  const cfgRead = (reg: number, len: number) => {
    const d = new Uint8Array(len);
    pio.write(0xcf8, u32(0x8000_0000 | (slot << 11) | (reg & ~3)));
    pio.read(0xcfc + (reg & 3), d);
    return d;
  };
  const close = () => fds.forEach(closeFd);
  return { main, slot, fn, lines, vm, pio, mmio, u32, cfgWrite, cfgRead, close };
}

Deno.test("config ports, a BAR-following window, kicks and INTx", () => {
  const r = rig();
  try {
    assert.deepEqual([...r.cfgRead(0, 4)], [0xf4, 0x1a, 0x42, 0x10]);
    const bar = r.main.barProgrammed(0);
    const d = new Uint8Array(2);
    // Decode is off: the window answers zeros, and no ioeventfd is registered.
    r.mmio.read(bar + VIRTIO_PCI_COMMON_NUMQ, d);
    assert.equal(d[0], 0);
    assert.equal(r.vm.ioeventfds.length, 0);
    r.cfgWrite(4, new Uint8Array([2, 0])); // memory decode on
    r.mmio.read(bar + VIRTIO_PCI_COMMON_NUMQ, d);
    assert.equal(d[0], 2);
    // BAR 0 became live: one ioeventfd per queue at its notify address.
    assert.deepEqual(r.vm.ioeventfds, [
      { addr: bar + VIRTIO_PCI_NOTIFY_OFFSET, fd: r.fn.notifyFds[0], deassign: false },
      { addr: bar + VIRTIO_PCI_NOTIFY_OFFSET + 4, fd: r.fn.notifyFds[1], deassign: false },
    ]);
    // Decode off again: they are removed.
    r.cfgWrite(4, new Uint8Array([0, 0]));
    assert.equal(r.vm.ioeventfds.filter((e) => e.deassign).length, 2);
    r.cfgWrite(4, new Uint8Array([2, 0]));
    // A notify write without an ioeventfd still becomes an eventfd kick.
    r.mmio.write(bar + VIRTIO_PCI_NOTIFY_OFFSET + 4, new Uint8Array([1, 0]));
    assert.equal(eventFdRead(r.fn.notifyFds[1]), 1n);
    // ISR: the device side raises INTx, the guest's ISR read lowers it.
    r.main.raiseIsr(1, { msix() {}, intx: (l) => r.lines.get(17)!.set(l) });
    assert.equal(r.lines.get(17)!.level, true);
    r.mmio.read(bar + 0x1000, d.subarray(0, 1));
    assert.equal(d[0], 1);
    assert.equal(r.lines.get(17)!.level, false);
  } finally {
    r.close();
  }
});

Deno.test("one KVM_SET_GSI_ROUTING per guest update of the MSI-X table or control", () => {
  const r = rig();
  try {
    r.cfgWrite(4, new Uint8Array([2, 0]));
    const bar = r.main.barProgrammed(0);
    const cap = r.main.msix.capOffset;
    // Enable MSI-X (3 vectors): one routing update, not three.
    r.cfgWrite(cap + 3, new Uint8Array([0x80]));
    assert.equal(r.vm.routings.length, 1);
    // The device side (its loop's instance) signals vector 1 while masked: pending.
    const loopSide = new VirtioPciDevice(SPEC, {
      state: r.main.sharedState,
      interrupt: { msix: () => assert.fail("delivered while masked"), intx() {} },
    });
    loopSide.msix.signal(1);
    assert.ok(loopSide.msix.pending(1));
    // Linux programs an entry as four dword writes: four updates.
    const entry = bar + VIRTIO_PCI_MSIX_TABLE_OFFSET + 16; // vector 1
    r.mmio.write(entry, r.u32(0xfee0_0000));
    r.mmio.write(entry + 4, r.u32(0));
    r.mmio.write(entry + 8, r.u32(0x41));
    assert.equal(eventFdRead(r.fn.msixFds[1]), 0n);
    r.mmio.write(entry + 12, r.u32(0)); // unmask: route, then deliver the pending vector
    assert.equal(r.vm.routings.length, 5);
    const last = r.vm.routings.at(-1)!;
    assert.deepEqual(last, gsiRoutes([{ device: r.main, msiGsiBase: 24 }]));
    assert.deepEqual(last.filter((x) => x.kind === "msi"), [{
      gsi: 25,
      kind: "msi",
      addressLo: 0xfee0_0000,
      addressHi: 0,
      data: 0x41,
    }]);
    assert.equal(eventFdRead(r.fn.msixFds[1]), 1n);
    assert.equal(loopSide.msix.pending(1), false);
  } finally {
    r.close();
  }
});
