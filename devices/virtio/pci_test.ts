import assert from "node:assert/strict";
import { GuestMemory } from "../../memory/guest_memory.ts";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { closeFd, eventFd, eventFdWrite } from "../../sys/fd.ts";
import { blkHeader, CountingSink, forwardingLink, TestDriver } from "./_test_driver.ts";
import { VirtioBlock } from "./block.ts";
import {
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_COMMON_MSIX,
  VIRTIO_PCI_COMMON_NUMQ,
  VIRTIO_PCI_COMMON_Q_NOFF,
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_STATUS,
} from "./constants.ts";
import { openDisk, parseDiskOption } from "./disk_file.ts";
import {
  VIRTIO_PCI_NOTIFY_OFFSET,
  VirtioPciDevice,
  virtioPciSpecOf,
  type VirtioTransportLink,
} from "./pci.ts";
import { VirtioPciBackend } from "./pci_backend.ts";
import { SyncAio } from "./sync_io.ts";

function rig() {
  const path = Deno.makeTempFileSync({ suffix: ".img" });
  Deno.truncateSync(path, 1 << 16);
  const disk = openDisk(parseDiskOption(path));
  const mem = GuestMemory.allocate(4 << 20);
  const blk = new VirtioBlock({ disk, aio: new SyncAio() });
  const sink = new CountingSink();
  // Where the register side's events go; tests switch it (null: nowhere).
  const link = { target: null as VirtioTransportLink | null };
  const dev = new VirtioPciDevice(virtioPciSpecOf(blk), {
    interrupt: sink,
    link: forwardingLink(() => link.target),
  });
  const backend = new VirtioPciBackend({ transport: dev, device: blk, mem });
  const drv = new TestDriver(mem, dev, { size: 16 });
  const close = () => {
    disk.close();
    mem.close();
    Deno.removeSync(path);
  };
  return { mem, dev, sink, backend, drv, link, close };
}

Deno.test("common config: queue registers, vectors and notify offsets", () => {
  const { dev, drv, close } = rig();
  try {
    assert.equal(drv.read(VIRTIO_PCI_COMMON_NUMQ, 2), 1);
    assert.equal(drv.read(VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    assert.equal(drv.read(VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
    drv.write(VIRTIO_PCI_COMMON_Q_SELECT, 2, 5); // no such queue
    assert.equal(drv.read(VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    drv.write(VIRTIO_PCI_COMMON_Q_SIZE, 2, 8); // ignored
    drv.write(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    assert.equal(drv.read(VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    // Vectors beyond the table read back as NO_VECTOR.
    drv.write(VIRTIO_PCI_COMMON_MSIX, 2, 7);
    assert.equal(drv.read(VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    drv.write(VIRTIO_PCI_COMMON_MSIX, 2, 0);
    assert.equal(drv.read(VIRTIO_PCI_COMMON_MSIX, 2), 0);
    // Another Worker's view over the same state sees the same registers.
    const twin = new VirtioPciDevice(dev.spec, { state: dev.sharedState });
    assert.equal(twin.configVector, 0);
    assert.equal(twin.deviceConfig.length, 72);
  } finally {
    close();
  }
});

Deno.test("reset completes only when the device side acknowledges it", () => {
  const { backend, drv, link, close } = rig();
  try {
    const events: string[] = [];
    const deferred: VirtioTransportLink = {
      notify: (q) => events.push(`notify ${q}`),
      statusChanged: () => events.push("status"),
    };
    link.target = backend;
    assert.ok(drv.init(0xffff_ffffn | (1n << 32n)));
    link.target = deferred;
    assert.ok(drv.status() & VIRTIO_CONFIG_S_DRIVER_OK);
    drv.write(VIRTIO_PCI_NOTIFY_OFFSET, 2, 0);
    drv.write(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    assert.deepEqual(events, ["notify 0", "status"]);
    assert.notEqual(drv.status(), 0); // the driver keeps polling
    backend.statusChanged(); // the loop thread handles the event
    assert.equal(drv.status(), 0);
    assert.equal(backend.activated, false);
  } finally {
    close();
  }
});

Deno.test("kicks arrive through an eventfd on the device's loop", async () => {
  const { mem, backend, drv, sink, link, close } = rig();
  const loop = new MainLoop();
  const running = loop.run();
  const fd = eventFd();
  try {
    link.target = backend;
    backend.attach(loop, [fd]);
    assert.ok(drv.init(0xffff_ffffn | (1n << 32n)));
    blkHeader(mem, 0x10_0000, VIRTIO_BLK_T_FLUSH, 0);
    mem.writeU8(0x10_1000, 0xee);
    drv.add([{ addr: 0x10_0000, len: 16 }, { addr: 0x10_1000, len: 1, write: true }]);
    eventFdWrite(fd); // what KVM does for an ioeventfd
    const deadline = Date.now() + 30_000;
    while (drv.collect().length === 0) {
      assert.ok(Date.now() < deadline, "kick never processed");
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.equal(mem.readU8(0x10_1000), VIRTIO_BLK_S_OK);
    assert.equal(sink.raised, 1);
  } finally {
    loop.setFdHandler(fd, null);
    closeFd(fd);
    loop.stop();
    await running;
    loop.close();
    close();
  }
});

Deno.test("a vCPU Worker drives the device over shared state and eventfds", async () => {
  const { mem, dev, backend, sink, close } = rig();
  const loop = new MainLoop();
  const running = loop.run();
  const kick = eventFd();
  const control = eventFd();
  const worker = new Worker(new URL("./_pci_test_worker.ts", import.meta.url), { type: "module" });
  try {
    backend.attach(loop, [kick], control);
    const reply = new Promise<{ results?: number[]; status?: number; error?: string }>((r) => {
      worker.onmessage = (e) => r(e.data);
    });
    worker.postMessage({
      spec: dev.spec,
      state: dev.sharedState,
      layout: mem.layout,
      notifyFds: [kick],
      controlFd: control,
    });
    const out = await reply;
    assert.equal(out.error, undefined);
    assert.deepEqual(out.results, [VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_OK]);
    assert.equal(out.status, 0);
    assert.ok(sink.raised >= 1);
    assert.equal(backend.activated, false); // the final reset reached the backend
  } finally {
    worker.terminate();
    loop.setFdHandler(kick, null);
    loop.setFdHandler(control, null);
    closeFd(kick);
    closeFd(control);
    loop.stop();
    await running;
    loop.close();
    close();
  }
});
