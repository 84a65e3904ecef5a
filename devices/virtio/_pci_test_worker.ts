/**
 * A vCPU-like Worker for pci_test.ts: it rebuilds the virtio-pci register
 * side from shared state and drives the device as a guest would, while the
 * backend runs on the test's main loop.
 *
 * @module
 */
import { GuestMemory, type GuestMemoryLayout } from "../../memory/guest_memory.ts";
import { blkHeader, TestDriver } from "./_test_driver.ts";
import { VIRTIO_BLK_T_IN } from "./constants.ts";
import { EventFdLink, VirtioPciDevice, type VirtioPciSpec, type VirtioPciState } from "./pci.ts";

interface Start {
  spec: VirtioPciSpec;
  state: VirtioPciState;
  layout: GuestMemoryLayout;
  notifyFds: number[];
  controlFd: number;
}

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<Start>) => void) | null;
  postMessage(m: unknown): void;
};

self.onmessage = (e) => {
  const { spec, state, layout, notifyFds, controlFd } = e.data;
  try {
    const mem = GuestMemory.fromLayout(layout);
    const dev = new VirtioPciDevice(spec, {
      state,
      link: new EventFdLink({ notifyFds, controlFd }),
    });
    const drv = new TestDriver(mem, dev, { size: 16 });
    if (!drv.init(0xffff_ffffn | (1n << 32n))) throw new Error("Feature negotiation failed");
    const results: number[] = [];
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (let i = 0; i < 3; i++) {
      blkHeader(mem, 0x10_0000, VIRTIO_BLK_T_IN, i);
      mem.writeU8(0x10_1000, 0xee);
      drv.add([
        { addr: 0x10_0000, len: 16 },
        { addr: 0x10_2000, len: 512, write: true },
        { addr: 0x10_1000, len: 1, write: true },
      ]);
      drv.kick();
      const deadline = Date.now() + 30_000;
      while (drv.collect().length === 0) {
        if (Date.now() > deadline) throw new Error("Request never completed");
        Atomics.wait(nap, 0, 0, 1);
      }
      results.push(mem.readU8(0x10_1000));
    }
    drv.reset();
    self.postMessage({ results, status: drv.status() });
  } catch (err) {
    self.postMessage({ error: String(err) });
  }
};
