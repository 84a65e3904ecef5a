// Multiqueue virtio-blk (VIRTIO_BLK_F_MQ): each request queue serves its own
// chains, completes into its own used ring and interrupts on its own MSI-X
// vector; a driver without MQ keeps to queue 0; a full backend stalls one
// queue and resumes it on a completion from another.
import assert from "node:assert/strict";
import { AioQueueFullError } from "../../aio/types.ts";
import { GuestMemory } from "../../memory/guest_memory.ts";
import {
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
} from "../pci/constants.ts";
import { blkHeader, CountingSink, TestDriver, wireDevice } from "./_test_driver.ts";
import { VIRTIO_BLK_MAX_QUEUES, VirtioBlock } from "./block.ts";
import {
  featureBit,
  VIRTIO_BLK_CFG_NUM_QUEUES,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_IN,
  VIRTIO_RING_F_EVENT_IDX,
} from "./constants.ts";
import { openDisk, parseDiskOption } from "./disk_file.ts";
import type { VirtioPciDevice } from "./pci.ts";
import { type BlockAio, SyncAio } from "./sync_io.ts";
import { VIRTIO_PCI_MSIX_TABLE_OFFSET } from "./pci_layout.ts";

const DISK_SIZE = 1 << 20;
const HDR = 0x100000;
const DATA = 0x200000;
const STATUS = 0x300000;
// EVENT_IDX off: every completion interrupts, so vectors can be counted.
const ALL = 0xffff_ffff_ffffn & ~featureBit(VIRTIO_RING_F_EVENT_IDX);

function sectorByte(sector: number): number {
  return (sector * 29 + 3) & 0xff;
}

interface MqRig {
  mem: GuestMemory;
  dev: VirtioPciDevice;
  drv: TestDriver;
  sink: CountingSink;
  blk: VirtioBlock;
  close(): void;
}

function setup(numQueues: number, options: { aio?: BlockAio; accept?: bigint } = {}): MqRig {
  const path = Deno.makeTempFileSync({ suffix: ".img" });
  const image = new Uint8Array(DISK_SIZE);
  for (let s = 0; s < DISK_SIZE / 512; s++) image.fill(sectorByte(s), s * 512, s * 512 + 512);
  Deno.writeFileSync(path, image);
  const disk = openDisk(parseDiskOption(path));
  const mem = GuestMemory.allocate(8 << 20);
  const blk = new VirtioBlock({ disk, aio: options.aio ?? new SyncAio(), numQueues });
  const sink = new CountingSink();
  const { dev } = wireDevice(blk, mem, { interrupt: sink, log: () => {} });
  // MSI-X on, vectors 1..numQueues programmed and unmasked (0 is config).
  dev.configWrite(PCI_COMMAND, new Uint8Array([PCI_COMMAND_MEMORY, 0]));
  const cap = dev.msix.capOffset;
  dev.configWrite(cap + PCI_MSIX_FLAGS, new Uint8Array([0, PCI_MSIX_FLAGS_ENABLE >> 8]));
  const drv = new TestDriver(mem, dev, { sizes: Array(numQueues).fill(16) });
  for (let v = 0; v <= numQueues; v++) {
    drv.write(VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v, 4, 0xfee0_0000);
    drv.write(VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v + 8, 4, 0x4040 + v);
    drv.write(VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v + 12, 4, 0);
  }
  const vectors = Array.from({ length: numQueues }, (_, q) => q + 1);
  assert.ok(drv.init(options.accept ?? ALL, { vectors }));
  return {
    mem,
    dev,
    drv,
    sink,
    blk,
    close() {
      disk.close();
      mem.close();
      Deno.removeSync(path);
    },
  };
}

/** Offers a one-sector read of `sector` on queue `q` (slot `i` of the test's buffers). */
function offerRead(rig: MqRig, q: number, i: number, sector: number): number {
  blkHeader(rig.mem, HDR + 16 * i, VIRTIO_BLK_T_IN, sector);
  rig.mem.writeU8(STATUS + i, 0xee);
  return rig.drv.queues[q].add([
    { addr: HDR + 16 * i, len: 16 },
    { addr: DATA + 512 * i, len: 512, write: true },
    { addr: STATUS + i, len: 1, write: true },
  ]);
}

function assertRead(rig: MqRig, i: number, sector: number): void {
  assert.equal(rig.mem.readU8(STATUS + i), VIRTIO_BLK_S_OK, `status of slot ${i}`);
  assert.ok(
    rig.mem.slice(DATA + 512 * i, 512).every((b) => b === sectorByte(sector)),
    `data of slot ${i} is sector ${sector}`,
  );
}

Deno.test("virtio-blk with 4 queues: MQ and num_queues offered, each queue on its own vector", () => {
  const rig = setup(4);
  try {
    assert.ok(rig.drv.features & featureBit(VIRTIO_BLK_F_MQ));
    assert.equal(rig.drv.config(VIRTIO_BLK_CFG_NUM_QUEUES, 2), 4);
    // One read offered on every queue; kick them in reverse order.
    const heads = [0, 1, 2, 3].map((q) => offerRead(rig, q, q, 10 * q + 1));
    for (const q of [3, 2, 1, 0]) {
      rig.drv.kick(q);
      // Only the kicked queue completed, into its own used ring, on its own vector.
      assert.deepEqual(rig.drv.queues[q].collect(), [{ id: heads[q], len: 513 }]);
      for (const other of [0, 1, 2, 3].filter((o) => o !== q)) {
        assert.deepEqual(rig.drv.queues[other].collect(), [], `queue ${other} after kick ${q}`);
      }
      assert.equal(rig.sink.vectors.at(-1), q + 1);
      assertRead(rig, q, 10 * q + 1);
    }
    assert.deepEqual(rig.sink.vectors, [4, 3, 2, 1]);
    assert.equal(rig.blk.requestCounts.in, 4);
  } finally {
    rig.close();
  }
});

Deno.test("virtio-blk with one queue offers no MQ; a driver without MQ keeps to queue 0", () => {
  const one = setup(1);
  try {
    assert.equal(one.drv.deviceFeatures() & featureBit(VIRTIO_BLK_F_MQ), 0n);
    assert.equal(one.drv.config(VIRTIO_BLK_CFG_NUM_QUEUES, 2), 1);
  } finally {
    one.close();
  }
  const rig = setup(2, { accept: ALL & ~featureBit(VIRTIO_BLK_F_MQ) });
  try {
    assert.equal(rig.drv.features & featureBit(VIRTIO_BLK_F_MQ), 0n);
    // Queue 1 exists in the transport, but without MQ the device does not serve it.
    offerRead(rig, 1, 1, 5);
    rig.drv.kick(1);
    assert.deepEqual(rig.drv.queues[1].collect(), []);
    assert.equal(rig.blk.requestCounts.in, 0);
    const head = offerRead(rig, 0, 0, 6);
    rig.drv.kick(0);
    assert.deepEqual(rig.drv.queues[0].collect(), [{ id: head, len: 513 }]);
    assertRead(rig, 0, 6);
  } finally {
    rig.close();
  }
});

Deno.test("a full backend stalls one queue; a completion on another resumes it", () => {
  const sync = new SyncAio();
  const held: (() => void)[] = [];
  const aio: BlockAio = {
    submit(req, cb) {
      if (held.length >= 1) throw new AioQueueFullError("Aio queue is full");
      return sync.submit(req, (r) => held.push(() => cb(r)));
    },
  };
  const rig = setup(2, { aio });
  try {
    const h0 = offerRead(rig, 0, 0, 7);
    const h1 = offerRead(rig, 1, 1, 8);
    rig.drv.kick(0);
    rig.drv.kick(1); // refused: the backend holds queue 0's request
    assert.equal(held.length, 1);
    held.shift()!();
    // Queue 0 completed, and queue 1's request went in on that completion.
    assert.deepEqual(rig.drv.queues[0].collect(), [{ id: h0, len: 513 }]);
    assert.equal(held.length, 1);
    assert.deepEqual(rig.drv.queues[1].collect(), []);
    held.shift()!();
    assert.deepEqual(rig.drv.queues[1].collect(), [{ id: h1, len: 513 }]);
    assertRead(rig, 0, 7);
    assertRead(rig, 1, 8);
    assert.deepEqual(rig.sink.vectors, [1, 2]);
  } finally {
    rig.close();
  }
});

Deno.test("virtio-blk refuses queue counts outside 1..64", () => {
  const disk = { fd: -1, size: 512, readOnly: true };
  for (const n of [0, -1, 1.5, VIRTIO_BLK_MAX_QUEUES + 1]) {
    assert.throws(
      () => new VirtioBlock({ disk, aio: new SyncAio(), numQueues: n }),
      RangeError,
      `${n}`,
    );
  }
  const max = new VirtioBlock({ disk, aio: new SyncAio(), numQueues: VIRTIO_BLK_MAX_QUEUES });
  assert.equal(max.numQueues, VIRTIO_BLK_MAX_QUEUES);
});

Deno.test("--disk num-queues=N (QEMU's virtio-blk-pci num-queues) reaches the device", () => {
  assert.equal(parseDiskOption("a.img,num-queues=4").numQueues, 4);
  assert.equal(parseDiskOption("a.img,num_queues=2,ro").numQueues, 2);
  // Absent: the builder picks one per vCPU.
  assert.equal(parseDiskOption("a.img").numQueues, undefined);
  assert.throws(() => parseDiskOption("a.img,num-queues=two"), /Invalid num-queues two/);
});
