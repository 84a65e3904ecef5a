import assert from "node:assert/strict";
import { ErrnoError } from "../sys/errno.ts";
import { closeFd, eventFd, eventFdRead } from "../sys/fd.ts";
import type { IoEventFd } from "../kvm/vm.ts";
import { PCI_COMMAND, PCI_COMMAND_MEMORY } from "../devices/pci/constants.ts";
import { PciBarAllocator } from "../devices/pci/bar_allocator.ts";
import { PciBus } from "../devices/pci/pci_bus.ts";
import { VirtioBlock } from "../devices/virtio/block.ts";
import {
  EventFdLink,
  VIRTIO_PCI_BAR,
  VIRTIO_PCI_NOTIFY_OFFSET,
  VirtioPciDevice,
  virtioPciSpecOf,
} from "../devices/virtio/pci.ts";
import { SyncAio } from "../devices/virtio/sync_io.ts";
import {
  type IoeventfdVm,
  newIoeventfdState,
  type PciFunctionArgs,
  syncNotifyIoeventfds,
} from "./pci_devices.ts";

const EEXIST = 17, ENOENT = 2, EINVAL = 22;

/**
 * KVM's ioeventfd table: one registration per address, EEXIST for a second;
 * a deassign must name the length it was assigned with (KVM matches it).
 */
class FakeVm implements IoeventfdVm {
  readonly at = new Map<number, number>();
  readonly lens = new Map<number, number>();
  /** A KVM that refuses length 0 (before any-length ioeventfds). */
  constructor(readonly anyLength = true) {}
  ioeventfd(e: IoEventFd, deassign = false): void {
    if (deassign) {
      if (this.at.get(e.addr) !== e.fd || this.lens.get(e.addr) !== e.len) {
        throw new ErrnoError("KVM_IOEVENTFD", ENOENT);
      }
      this.at.delete(e.addr);
      this.lens.delete(e.addr);
      return;
    }
    if (e.len === 0 && !this.anyLength) throw new ErrnoError("KVM_IOEVENTFD", EINVAL);
    if (this.at.has(e.addr)) throw new ErrnoError("KVM_IOEVENTFD", EEXIST);
    this.at.set(e.addr, e.fd);
    this.lens.set(e.addr, e.len);
  }
}

function moveBar(dev: VirtioPciDevice, addr: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, addr, true);
  dev.configWrite(0x10, b);
  dev.configWrite(0x14, new Uint8Array(4));
}

Deno.test("a guest moving one BAR onto another's keeps the VM: the doorbell falls back to MMIO exits", () => {
  const vm = new FakeVm();
  const bus = new PciBus();
  const alloc = new PciBarAllocator();
  const fds: number[] = [];
  const logs: string[] = [];
  const log = (m: string) => logs.push(m);
  const fns: { dev: VirtioPciDevice; f: PciFunctionArgs }[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const blk = new VirtioBlock({
        disk: { fd: -1, size: 512, readOnly: true },
        aio: new SyncAio(),
      });
      const notify = eventFd();
      const control = eventFd();
      fds.push(notify, control);
      const dev = new VirtioPciDevice(virtioPciSpecOf(blk), {
        link: new EventFdLink({ notifyFds: [notify], controlFd: control }),
      });
      alloc.assign(dev);
      const slot = bus.add(dev);
      const f = {
        slot,
        notifyFds: [notify],
        ioeventfdBase: newIoeventfdState(),
      } as unknown as PciFunctionArgs;
      fns.push({ dev, f });
      dev.configWrite(PCI_COMMAND, new Uint8Array([PCI_COMMAND_MEMORY, 0]));
    }
    const sync = () => fns.forEach(({ dev, f }) => syncNotifyIoeventfds(vm, f, dev, log));
    sync();
    const [a, b] = fns;
    const addrA = a.dev.barAddress(VIRTIO_PCI_BAR), addrB = b.dev.barAddress(VIRTIO_PCI_BAR);
    assert.notEqual(addrA, addrB);
    assert.equal(vm.at.get(addrA + VIRTIO_PCI_NOTIFY_OFFSET), a.f.notifyFds[0]);
    assert.equal(vm.at.get(addrB + VIRTIO_PCI_NOTIFY_OFFSET), b.f.notifyFds[0]);

    // B onto A: KVM says EEXIST; nothing throws, one line, A keeps the address.
    moveBar(b.dev, addrA);
    assert.equal(b.dev.barAddress(VIRTIO_PCI_BAR), addrA);
    sync();
    sync();
    assert.equal(logs.length, 1, logs.join("\n"));
    assert.match(logs[0], /EEXIST.*MMIO exit path/);
    assert.equal(vm.at.get(addrA + VIRTIO_PCI_NOTIFY_OFFSET), a.f.notifyFds[0]);
    assert.equal(vm.at.has(addrB + VIRTIO_PCI_NOTIFY_OFFSET), false, "old place released");
    // B's doorbell still works, through its notify register (an MMIO exit).
    b.dev.barWrite(VIRTIO_PCI_BAR, VIRTIO_PCI_NOTIFY_OFFSET, new Uint8Array(2));
    assert.equal(eventFdRead(b.f.notifyFds[0]), 1n);

    // A moves away: B gets the ioeventfd at the address it now owns alone.
    moveBar(a.dev, addrB);
    sync();
    assert.equal(vm.at.get(addrB + VIRTIO_PCI_NOTIFY_OFFSET), a.f.notifyFds[0]);
    assert.equal(vm.at.get(addrA + VIRTIO_PCI_NOTIFY_OFFSET), b.f.notifyFds[0]);
    assert.equal(logs.length, 1);
    // Decode off: both released.
    for (const { dev } of fns) dev.configWrite(PCI_COMMAND, new Uint8Array([0, 0]));
    sync();
    assert.equal(vm.at.size, 0);
  } finally {
    for (const fd of fds) closeFd(fd);
  }
});

Deno.test("doorbell ioeventfds take any access length (QEMU's fast MMIO), else the 16-bit one", () => {
  for (const anyLength of [true, false]) {
    const vm = new FakeVm(anyLength);
    const alloc = new PciBarAllocator();
    const notify = [eventFd(), eventFd()];
    const control = eventFd();
    try {
      const blk = new VirtioBlock({
        disk: { fd: -1, size: 512, readOnly: true },
        aio: new SyncAio(),
        numQueues: 2,
      });
      const dev = new VirtioPciDevice(virtioPciSpecOf(blk), {
        link: new EventFdLink({ notifyFds: notify, controlFd: control }),
      });
      alloc.assign(dev);
      new PciBus().add(dev);
      const f = {
        slot: 1,
        notifyFds: notify,
        ioeventfdBase: newIoeventfdState(),
      } as unknown as PciFunctionArgs;
      dev.configWrite(PCI_COMMAND, new Uint8Array([PCI_COMMAND_MEMORY, 0]));
      const logs: string[] = [];
      syncNotifyIoeventfds(vm, f, dev, (m) => logs.push(m));
      assert.equal(logs.length, 0, logs.join("\n"));
      const base = dev.barAddress(VIRTIO_PCI_BAR) + VIRTIO_PCI_NOTIFY_OFFSET;
      const len = anyLength ? 0 : 2;
      assert.deepEqual([...vm.lens], [[base, len], [base + 4, len]]);
      // A BAR move deregisters with the length it registered with (or KVM says ENOENT).
      moveBar(dev, dev.barAddress(VIRTIO_PCI_BAR) + 0x10_0000);
      syncNotifyIoeventfds(vm, f, dev, (m) => logs.push(m));
      assert.equal(logs.length, 0, logs.join("\n"));
      assert.equal(vm.at.size, 2);
      assert.ok(!vm.at.has(base), "old place released");
    } finally {
      for (const fd of [...notify, control]) closeFd(fd);
    }
  }
});
