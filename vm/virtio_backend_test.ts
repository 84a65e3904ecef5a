// The loop side of a virtio-pci function without KVM: the virtio-blk factory
// is prepared and attached the way the builder does it, a vCPU-side
// transport over the same shared state (as a vCPU thread builds it) drives
// it with the test driver, and kicks and status changes travel through the
// eventfds the loop polls.
import assert from "node:assert/strict";
import { attachVirtioBackend, prepareVirtioBackend, stopVirtioBackend } from "./virtio_backend.ts";
import { DISKS_MODULE, openDisks, type VirtioBlockBackendArgs } from "../machine/disks.ts";
import { newIoeventfdState, type PciFunctionArgs } from "../machine/pci_devices.ts";
import { MainLoop } from "../mainloop/main_loop.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import { closeFd, eventFd } from "../sys/fd.ts";
import { EventFdLink, VirtioPciDevice } from "../devices/virtio/pci.ts";
import { blkHeader, TestDriver } from "../devices/virtio/_test_driver.ts";
import { VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN } from "../devices/virtio/constants.ts";

Deno.test("virtio-blk through prepare/attach: a read request completes from the loop", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-vbe-" });
  const image = `${dir}/disk.img`;
  const pattern = new Uint8Array(64 << 10).map((_, i) => (i * 7) & 0xff);
  await Deno.writeFile(image, pattern);
  const [disk] = openDisks([image]);
  const mem = GuestMemory.allocate(4 << 20);
  const loop = new MainLoop();
  const running = loop.run();
  const fds: number[] = [];
  const newFd = () => {
    const fd = eventFd();
    fds.push(fd);
    return fd;
  };
  const id = 0x7e57;
  try {
    const args: VirtioBlockBackendArgs = {
      disk: { fd: disk.file.fd, size: disk.file.size, readOnly: false },
      aio: "sync",
    };
    const spec = await prepareVirtioBackend(loop, {
      id,
      module: DISKS_MODULE,
      factory: "virtioBlockBackend",
      args,
    });
    assert.equal(spec.deviceType, 2);
    assert.equal(spec.numQueues, 1);
    // The builder's instance: registers, fds.
    const main = new VirtioPciDevice(spec);
    const fn: PciFunctionArgs = {
      spec,
      state: main.sharedState,
      slot: 1,
      notifyFds: [newFd()],
      controlFd: newFd(),
      intxGsi: 17,
      msiGsiBase: 24,
      msixFds: Array.from({ length: main.msix.vectors }, newFd),
      ioeventfdBase: newIoeventfdState(),
    };
    await attachVirtioBackend(loop, { id, memory: mem.layout, vmFd: -1, fn });
    // The device config was written on attach: capacity in sectors.
    assert.equal(
      new DataView(main.deviceConfig.buffer, main.deviceConfig.byteOffset).getUint32(0, true),
      128,
    );
    // A vCPU thread's instance; MSI-X on (vectors stay masked: no interrupt leaves).
    const dev = new VirtioPciDevice(spec, {
      state: fn.state,
      link: new EventFdLink({ notifyFds: fn.notifyFds, controlFd: fn.controlFd }),
    });
    dev.configWrite(dev.msix.capOffset + 3, new Uint8Array([0x80]));
    const drv = new TestDriver(mem, dev, { size: 16 });
    assert.ok(drv.init(0xffff_ffffn | (1n << 32n), { vector: 0 }));
    blkHeader(mem, 0x10_0000, VIRTIO_BLK_T_IN, 3);
    mem.writeU8(0x10_1000, 0xee);
    drv.add([
      { addr: 0x10_0000, len: 16 },
      { addr: 0x10_2000, len: 512, write: true },
      { addr: 0x10_1000, len: 1, write: true },
    ]);
    drv.kick();
    const deadline = Date.now() + 30_000;
    let used = drv.collect();
    while (used.length === 0) {
      assert.ok(Date.now() < deadline, "the loop never completed the request");
      await new Promise((r) => setTimeout(r, 2));
      used = drv.collect();
    }
    assert.equal(mem.readU8(0x10_1000), VIRTIO_BLK_S_OK);
    assert.deepEqual(mem.slice(0x10_2000, 512), pattern.subarray(3 * 512, 4 * 512));
    assert.ok(dev.msix.pending(0), "the completion vector is pending (masked)");
  } finally {
    await stopVirtioBackend(loop, id);
    loop.stop();
    await running;
    loop.close();
    fds.forEach(closeFd);
    disk.file.close();
    mem.close();
    await Deno.remove(dir, { recursive: true });
  }
});
