// vhost-net follows the guest's MSI-X masking. The guest programs the
// function through bus 0 as a vCPU thread serves it (machine/pci_devices.ts),
// over a fake KVM that routes GSIs, arms and disarms irqfds and injects what
// an armed irqfd carries, as KVM does. The device side runs as on its loop:
// VirtioPciBackend and VhostNet over a recording vhost device, whose
// VHOST_SET_VRING_CALL fds are what the kernel's vhost worker would write;
// the test writes them as that worker would. The MSI-X writes come in the
// order Linux 6.x makes them (msix_capability_init, request_irq, an
// affinity change's pci_write_msg_msix, free_irq / pci_free_irq_vectors).
import assert from "node:assert/strict";
import {
  buildPciBus,
  newIoeventfdState,
  type PciFunctionArgs,
  type PciVmOps,
} from "../../machine/pci_devices.ts";
import { Bus } from "../bus.ts";
import type { DeviceContext } from "../device_spec.ts";
import { FakeIrqLine } from "../irq.ts";
import { PciBarAllocator } from "../pci/bar_allocator.ts";
import { PciBus } from "../pci/pci_bus.ts";
import { PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_MASKALL } from "../pci/constants.ts";
import { GuestMemory } from "../../memory/guest_memory.ts";
import { closeFd, eventFd, eventFdDrain, eventFdWrite } from "../../sys/fd.ts";
import type { GsiRoute, IoEventFd } from "../../kvm/vm.ts";
import { featureBit, VIRTIO_F_VERSION_1, VIRTIO_PCI_COMMON_MSIX } from "./constants.ts";
import { ManualLoop, SocketTap } from "./_net_fake_tap.ts";
import { TestDriver } from "./_test_driver.ts";
import {
  VIRTIO_PCI_MSIX_PBA_OFFSET,
  VIRTIO_PCI_MSIX_TABLE_OFFSET,
  VirtioPciDevice,
  virtioPciSpecOf,
} from "./pci.ts";
import { VirtioPciBackend } from "./pci_backend.ts";
import {
  VHOST_GET_FEATURES,
  VHOST_SET_VRING_CALL,
  VhostNet,
  type VhostNetDev,
} from "./vhost_net.ts";
import { NET_RX_QUEUE, NET_TX_QUEUE } from "./net.ts";

const MSI_GSI_BASE = 24;
/** Linux's virtio-net vectors: config 0, RX 1, TX 2. */
const CONFIG_VECTOR = 0;
const RX_VECTOR = 1;
const TX_VECTOR = 2;

/** KVM as far as irqfds go: an armed irqfd's writes are injected through its GSI's route. */
class FakeKvm implements PciVmOps {
  readonly routes = new Map<number, GsiRoute>();
  readonly armed = new Map<number, number>();
  readonly injected: { gsi: number; data: number }[] = [];
  /** Routing updates and irqfd (dis)arming, in order. */
  readonly log: string[] = [];
  lost = 0;

  setGsiRouting(routes: readonly GsiRoute[]): void {
    this.routes.clear();
    for (const r of routes) if (r.kind === "msi") this.routes.set(r.gsi, r);
    this.log.push("route");
  }

  ioeventfd(_e: IoEventFd, _deassign?: boolean): void {}

  irqfd(fd: number, gsi: number, deassign = false): void {
    if (deassign) {
      if (this.armed.get(fd) !== gsi) throw new Error(`irqfd ${fd} disarmed while not armed`);
      // Anything written before this was consumed by KVM's wakeup already.
      this.pump();
      this.armed.delete(fd);
      this.log.push(`disarm ${gsi}`);
      return;
    }
    if (this.armed.has(fd)) throw new Error(`irqfd ${fd} armed twice`);
    this.armed.set(fd, gsi);
    this.log.push(`arm ${gsi}`);
    // KVM_IRQFD checks the eventfd at assignment and injects what waits there.
    this.pump();
  }

  /** What KVM does when an armed irqfd becomes readable: one injection. */
  pump(): void {
    for (const [fd, gsi] of this.armed) {
      if (!eventFdDrain(fd)) continue;
      const r = this.routes.get(gsi);
      if (r && r.kind === "msi") this.injected.push({ gsi, data: r.data });
      else this.lost++;
    }
  }

  /** Takes the injections so far. */
  take(): { gsi: number; data: number }[] {
    this.pump();
    return this.injected.splice(0);
  }
}

/** /dev/vhost-net as VhostNet uses it, recording the call fd of each ring. */
class FakeVhostDev implements VhostNetDev {
  readonly calls = new Map<number, number>();
  readonly features = featureBit(VIRTIO_F_VERSION_1);
  ioctl(_name: string, request: number, arg: Uint8Array | null): void {
    if (!arg) return;
    if (request === VHOST_GET_FEATURES) {
      new DataView(arg.buffer).setBigUint64(0, this.features, true);
    } else if (request === VHOST_SET_VRING_CALL) {
      const v = new DataView(arg.buffer);
      this.calls.set(v.getUint32(0, true), v.getInt32(4, true));
    }
  }
  close(): void {}
  /** What the kernel's vhost worker does after it used buffers on ring `q`. */
  signal(q: number): void {
    const fd = this.calls.get(q);
    assert.ok(fd !== undefined && fd >= 0, `ring ${q} has a call fd`);
    eventFdWrite(fd);
  }
}

function rig() {
  const loop = new ManualLoop();
  const tap = new SocketTap();
  const vhostDev = new FakeVhostDev();
  const mac = Uint8Array.from([0x52, 0x54, 0, 1, 2, 3]);
  const vhost = new VhostNet({ tap, loop, mac, dev: vhostDev });
  const spec = virtioPciSpecOf(vhost);
  // The builder: registers, a slot, BAR 0, fds, every vector's irqfd armed.
  const main = new VirtioPciDevice(spec);
  const machineBus = new PciBus();
  const slot = machineBus.add(main);
  new PciBarAllocator().assign(main);
  const fds: number[] = [];
  const newFd = () => {
    const fd = eventFd();
    fds.push(fd);
    return fd;
  };
  const fn: PciFunctionArgs = {
    spec,
    state: main.sharedState,
    slot,
    notifyFds: [newFd(), newFd()],
    controlFd: newFd(),
    intxGsi: 17,
    msiGsiBase: MSI_GSI_BASE,
    msixFds: Array.from({ length: main.msix.vectors }, newFd),
    ioeventfdBase: newIoeventfdState(),
  };
  const kvm = new FakeKvm();
  fn.msixFds.forEach((fd, v) => kvm.irqfd(fd, MSI_GSI_BASE + v));
  kvm.log.length = 0;
  // The device's loop: its own transport instance, the backend, VhostNet.
  const mem = GuestMemory.allocate(4 << 20);
  const loopSide = new VirtioPciDevice(spec, {
    state: fn.state,
    interrupt: {
      msix: (v: number) => eventFdWrite(fn.msixFds[v]),
      intx() {},
      msixFd: (v: number) => fn.msixFds[v],
    },
  });
  const backend = new VirtioPciBackend({ transport: loopSide, device: vhost, mem });
  backend.attach(loop, fn.notifyFds);
  // A vCPU thread's bus 0.
  const ctx = { irq: () => new FakeIrqLine() } as unknown as DeviceContext;
  const maps = buildPciBus(
    {
      vmFd: -1,
      addressState: machineBus.addressState,
      hostBridge: machineBus.hostBridge.state(),
      functions: [fn],
    },
    ctx,
    kvm,
  );
  const pio = new Bus();
  const mmio = new Bus();
  for (const m of maps) (m.space === "pio" ? pio : mmio).insert(m.device, m.base, m.size);
  const bar = main.barProgrammed(0);
  const cfgAddr = (reg: number) => pio.write(0xcf8, u32(0x8000_0000 | (slot << 11) | (reg & ~3)));
  const cfgWrite16 = (reg: number, v: number) => {
    cfgAddr(reg);
    pio.write(0xcfc + (reg & 3), new Uint8Array([v & 0xff, v >> 8]));
  };
  const cfgRead16 = (reg: number) => {
    const d = new Uint8Array(2);
    cfgAddr(reg);
    pio.read(0xcfc + (reg & 3), d);
    return d[0] | (d[1] << 8);
  };
  // The guest's view of BAR 0, through the vCPU thread's bus; the loop
  // answers a status change at once (its control eventfd).
  const guestView = {
    barRead: (_bar: number, offset: number, d: Uint8Array) => mmio.read(bar + offset, d),
    barWrite: (_bar: number, offset: number, d: Uint8Array) => {
      mmio.write(bar + offset, d);
      if (eventFdDrain(fn.controlFd)) backend.statusChanged();
    },
  } as unknown as VirtioPciDevice;
  const drv = new TestDriver(mem, guestView, { sizes: [64, 64] });
  const cap = main.msix.capOffset;
  const entry = (v: number, word: number) => bar + VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v + 4 * word;
  const msixCtl = (set: number, clear: number) =>
    cfgWrite16(cap + 2, (cfgRead16(cap + 2) & ~clear) | set);
  /** pci_write_msg_msix: masks an unmasked entry around the message write. */
  const writeMessage = (v: number, address: number, data: number) => {
    const ctrl = readU32(mmio, entry(v, 3));
    const unmasked = (ctrl & 1) === 0;
    if (unmasked) mmio.write(entry(v, 3), u32(ctrl | 1));
    mmio.write(entry(v, 0), u32(address));
    mmio.write(entry(v, 1), u32(0));
    mmio.write(entry(v, 2), u32(data));
    if (unmasked) mmio.write(entry(v, 3), u32(ctrl));
    readU32(mmio, entry(v, 2));
  };
  const setMask = (v: number, masked: boolean) => mmio.write(entry(v, 3), u32(masked ? 1 : 0));
  const pba = () => readU32(mmio, bar + VIRTIO_PCI_MSIX_PBA_OFFSET);
  /** The bring-up Linux does: MSI-X on (all masked), messages, unmask on request_irq, DRIVER_OK. */
  const bringUp = () => {
    cfgWrite16(4, 2); // memory decode
    msixCtl(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 0);
    for (let v = 0; v < 3; v++) setMask(v, true);
    msixCtl(0, PCI_MSIX_FLAGS_MASKALL);
    for (let v = 0; v < 3; v++) {
      writeMessage(v, 0xfee0_0000, 0x40 + v);
      setMask(v, false);
    }
    drv.write(VIRTIO_PCI_COMMON_MSIX, 2, CONFIG_VECTOR);
    assert.ok(drv.init(0n, { vectors: [RX_VECTOR, TX_VECTOR] }));
    assert.ok(backend.activated, "DRIVER_OK reached the backend");
  };
  const close = () => {
    vhost.close();
    tap.close();
    mem.close();
    fds.forEach(closeFd);
  };
  return {
    kvm,
    vhostDev,
    fn,
    loopSide,
    bringUp,
    writeMessage,
    setMask,
    msixCtl,
    pba,
    vhost,
    close,
  };
}

function u32(v: number): Uint8Array {
  return new Uint8Array(new Uint32Array([v >>> 0]).buffer);
}

function readU32(bus: Bus, addr: number): number {
  const d = new Uint8Array(4);
  bus.read(addr, d);
  return new DataView(d.buffer).getUint32(0, true);
}

const RX_GSI = MSI_GSI_BASE + RX_VECTOR;
const TX_GSI = MSI_GSI_BASE + TX_VECTOR;

Deno.test("vhost's call fd is the vector's irqfd; a masked vector's signal waits in the PBA and arrives once on unmask", () => {
  const r = rig();
  try {
    r.bringUp();
    assert.deepEqual(r.vhost.directInterrupts, [true, true]);
    assert.equal(r.vhostDev.calls.get(NET_RX_QUEUE), r.fn.msixFds[RX_VECTOR]);
    assert.equal(r.vhostDev.calls.get(NET_TX_QUEUE), r.fn.msixFds[TX_VECTOR]);
    assert.deepEqual(r.kvm.take(), [], "nothing before traffic");
    r.vhostDev.signal(NET_RX_QUEUE);
    assert.deepEqual(r.kvm.take(), [{ gsi: RX_GSI, data: 0x41 }]);

    // The guest masks the RX vector: its irqfd is disarmed at once.
    r.kvm.log.length = 0;
    r.setMask(RX_VECTOR, true);
    assert.deepEqual(r.kvm.log, [`disarm ${RX_GSI}`, "route"]);
    r.vhostDev.signal(NET_RX_QUEUE);
    r.vhostDev.signal(NET_RX_QUEUE);
    assert.deepEqual(r.kvm.take(), [], "no interrupt while masked");
    assert.equal(r.pba(), 1 << RX_VECTOR, "the guest reads it pending");
    assert.equal(r.pba(), 1 << RX_VECTOR, "and still pending on a second read");
    // TX is not masked and keeps going.
    r.vhostDev.signal(NET_TX_QUEUE);
    assert.deepEqual(r.kvm.take(), [{ gsi: TX_GSI, data: 0x42 }]);

    // Unmask: routed, re-armed, one interrupt for both signals, PBA clear.
    r.kvm.log.length = 0;
    r.setMask(RX_VECTOR, false);
    assert.deepEqual(r.kvm.log, ["route", `arm ${RX_GSI}`]);
    assert.deepEqual(r.kvm.take(), [{ gsi: RX_GSI, data: 0x41 }]);
    assert.equal(r.pba(), 0);
    assert.deepEqual(r.kvm.take(), []);
    assert.equal(r.kvm.lost, 0);
  } finally {
    r.close();
  }
});

Deno.test("an affinity change (mask, new message, unmask) delivers what came meanwhile to the new message", () => {
  const r = rig();
  try {
    r.bringUp();
    r.kvm.log.length = 0;
    // pci_write_msg_msix masks around the message; vhost signals in the middle of it.
    r.setMask(RX_VECTOR, true);
    r.vhostDev.signal(NET_RX_QUEUE);
    r.writeMessage(RX_VECTOR, 0xfee0_1000, 0x51); // masked already: no extra mask dance
    assert.deepEqual(r.kvm.take(), [], "nothing through a half-written message");
    r.setMask(RX_VECTOR, false);
    assert.deepEqual(r.kvm.log, [
      `disarm ${RX_GSI}`,
      "route",
      "route",
      "route",
      "route",
      "route",
      `arm ${RX_GSI}`,
    ]);
    assert.deepEqual(r.kvm.take(), [{ gsi: RX_GSI, data: 0x51 }]);
    // Linux's own sequence on an unmasked vector: the mask comes from the write itself.
    r.writeMessage(TX_VECTOR, 0xfee0_1000, 0x52);
    r.vhostDev.signal(NET_TX_QUEUE);
    assert.deepEqual(r.kvm.take(), [{ gsi: TX_GSI, data: 0x52 }]);
    assert.equal(r.kvm.lost, 0);
  } finally {
    r.close();
  }
});

Deno.test("the function mask holds every vector, the loop's own signals and vhost's alike, and releases each once", () => {
  const r = rig();
  try {
    r.bringUp();
    r.kvm.log.length = 0;
    r.msixCtl(PCI_MSIX_FLAGS_MASKALL, 0);
    assert.deepEqual(r.kvm.log.filter((l) => l !== "route"), [
      `disarm ${MSI_GSI_BASE + CONFIG_VECTOR}`,
      `disarm ${RX_GSI}`,
      `disarm ${TX_GSI}`,
    ]);
    assert.ok(r.kvm.log.indexOf("route") > r.kvm.log.indexOf(`disarm ${TX_GSI}`));
    r.vhostDev.signal(NET_TX_QUEUE);
    // The loop raises RX through the transport (the TypeScript path's PBA) and vhost signals it too.
    assert.ok(r.loopSide.msix.signal(RX_VECTOR));
    r.vhostDev.signal(NET_RX_QUEUE);
    assert.deepEqual(r.kvm.take(), []);
    assert.equal(r.pba(), (1 << RX_VECTOR) | (1 << TX_VECTOR));
    r.kvm.log.length = 0;
    r.msixCtl(0, PCI_MSIX_FLAGS_MASKALL);
    assert.equal(r.kvm.log[0], "route", "re-routed before anything is armed");
    assert.deepEqual(
      r.kvm.take().sort((a, b) => a.gsi - b.gsi),
      [{ gsi: RX_GSI, data: 0x41 }, { gsi: TX_GSI, data: 0x42 }],
    );
    assert.equal(r.pba(), 0);
    assert.deepEqual(r.kvm.take(), []);
  } finally {
    r.close();
  }
});

Deno.test("driver unbind and rebind: MSI-X off disarms before the routes go, on again re-arms after them", () => {
  const r = rig();
  try {
    r.bringUp();
    // free_irq masks each vector, pci_free_irq_vectors turns MSI-X off.
    for (let v = 0; v < 3; v++) r.setMask(v, true);
    r.msixCtl(0, PCI_MSIX_FLAGS_ENABLE);
    assert.equal(r.kvm.routes.size, 0);
    assert.equal(r.kvm.armed.size, 0);
    r.vhostDev.signal(NET_RX_QUEUE); // a late completion before the reset
    r.kvm.log.length = 0;
    r.bringUp();
    assert.deepEqual(r.kvm.log.filter((l) => l.startsWith("arm")), [
      `arm ${MSI_GSI_BASE + CONFIG_VECTOR}`,
      `arm ${RX_GSI}`,
      `arm ${TX_GSI}`,
    ]);
    // The late signal was pending; it arrives once, through the new message.
    assert.deepEqual(r.kvm.take(), [{ gsi: RX_GSI, data: 0x41 }]);
    r.vhostDev.signal(NET_RX_QUEUE);
    assert.deepEqual(r.kvm.take(), [{ gsi: RX_GSI, data: 0x41 }]);
    assert.equal(r.kvm.lost, 0);
  } finally {
    r.close();
  }
});
