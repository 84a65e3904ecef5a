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
import { VirtioBlock } from "./block.ts";
import {
  featureBit,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_VERSION_1,
  VIRTIO_PCI_COMMON_STATUS,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from "./constants.ts";
import { openDisk, parseDiskOption } from "./disk_file.ts";
import type { VirtioPciDevice } from "./pci.ts";
import type { VirtioPciBackend } from "./pci_backend.ts";
import { type BlockAio, SyncAio } from "./sync_io.ts";
import type { AioRequest } from "../../aio/types.ts";
import type { EventLoop } from "../../mainloop/types.ts";
import { VIRTIO_BLK_BATCH, VIRTIO_BLK_DISCARD_PIECE } from "./block.ts";

const DISK_SIZE = 1 << 20;
const HDR = 0x100000;
const DATA = 0x200000;
const STATUS = 0x300000;
const ALL = 0xffff_ffff_ffffn;

function pattern(size: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
  return b;
}

interface Rig {
  path: string;
  mem: GuestMemory;
  dev: VirtioPciDevice;
  drv: TestDriver;
  sink: CountingSink;
  backend: VirtioPciBackend;
  logs: string[];
  close(): void;
}

function setup(
  options: {
    ro?: boolean;
    accept?: bigint;
    size?: number;
    aio?: BlockAio;
    loop?: Pick<EventLoop, "bh">;
    diskSize?: number;
  } = {},
): Rig {
  const path = Deno.makeTempFileSync({ suffix: ".img" });
  Deno.writeFileSync(path, pattern(DISK_SIZE));
  if (options.diskSize) Deno.truncateSync(path, options.diskSize);
  const disk = openDisk(parseDiskOption(path + (options.ro ? ",ro" : "")));
  const mem = GuestMemory.allocate(8 << 20);
  const blk = new VirtioBlock({
    disk,
    aio: options.aio ?? new SyncAio(),
    serial: "denovmm-disk-0001",
    loop: options.loop,
  });
  const sink = new CountingSink();
  const logs: string[] = [];
  const { dev, backend } = wireDevice(blk, mem, { interrupt: sink, log: (m) => logs.push(m) });
  const drv = new TestDriver(mem, dev, { size: options.size ?? 64 });
  assert.ok(drv.init(options.accept ?? ALL));
  return {
    path,
    mem,
    dev,
    drv,
    sink,
    backend,
    logs,
    close() {
      disk.close();
      mem.close();
      Deno.removeSync(path);
    },
  };
}

/** Sends one request (header, data segments, status) and returns [status, used.len]. */
function request(
  rig: Rig,
  type: number,
  sector: number,
  data: { addr: number; len: number }[],
  options: { write?: boolean; indirect?: boolean } = {},
): [number, number] {
  const { mem, drv } = rig;
  blkHeader(mem, HDR, type, sector);
  mem.writeU8(STATUS, 0xee);
  const segs = [
    { addr: HDR, len: 16 },
    ...data.map((d) => ({ ...d, write: options.write ?? false })),
    { addr: STATUS, len: 1, write: true },
  ];
  const head = drv.add(segs, { indirect: options.indirect });
  assert.ok(head >= 0);
  drv.kick();
  const used = drv.collect();
  assert.equal(used.length, 1);
  assert.equal(used[0].id, head);
  return [mem.readU8(STATUS), used[0].len];
}

Deno.test("virtio-blk negotiates features and exposes its config", () => {
  const rig = setup();
  try {
    const f = rig.drv.deviceFeatures();
    for (
      const bit of [
        VIRTIO_F_VERSION_1,
        VIRTIO_BLK_F_FLUSH,
        VIRTIO_BLK_F_DISCARD,
        VIRTIO_RING_F_EVENT_IDX,
      ]
    ) {
      assert.ok(f & featureBit(bit), `feature ${bit}`);
    }
    assert.equal(f & featureBit(VIRTIO_BLK_F_RO), 0n);
    assert.equal(rig.drv.config(0, 4), DISK_SIZE / 512);
    assert.equal(rig.drv.config(12, 4), 254);
    assert.equal(rig.drv.config(20, 4), 512);
    assert.ok(rig.backend.activated);
    // Without VERSION_1, FEATURES_OK does not stick.
    assert.equal(rig.drv.init(0n, { exactFeatures: featureBit(VIRTIO_BLK_F_FLUSH) }), false);
    assert.equal(rig.drv.status() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
    // Nor with a feature the device never offered.
    assert.equal(
      rig.drv.init(0n, { exactFeatures: featureBit(VIRTIO_F_VERSION_1) | featureBit(40) }),
      false,
    );
  } finally {
    rig.close();
  }
});

Deno.test("virtio-blk reads sectors into guest RAM", () => {
  const rig = setup();
  try {
    const file = pattern(DISK_SIZE);
    const [status, len] = request(rig, VIRTIO_BLK_T_IN, 8, [{ addr: DATA, len: 4096 }], {
      write: true,
    });
    assert.equal(status, VIRTIO_BLK_S_OK);
    assert.equal(len, 4097);
    assert.deepEqual(rig.mem.slice(DATA, 4096), file.subarray(8 * 512, 8 * 512 + 4096));
  } finally {
    rig.close();
  }
});

Deno.test("virtio-blk writes multi-descriptor and indirect chains to the file", () => {
  const rig = setup();
  try {
    const src = new Uint8Array(4096).map((_, i) => (i * 13 + 1) & 0xff);
    rig.mem.write(DATA, src);
    const segs = [
      { addr: DATA, len: 512 },
      { addr: DATA + 512, len: 1024 },
      { addr: DATA + 1536, len: 2560 },
    ];
    let [status, len] = request(rig, VIRTIO_BLK_T_OUT, 100, segs);
    assert.equal(status, VIRTIO_BLK_S_OK);
    assert.equal(len, 1);
    let file = Deno.readFileSync(rig.path);
    assert.deepEqual(file.subarray(100 * 512, 100 * 512 + 4096), src);
    // The same through an indirect table, to another place.
    [status] = request(rig, VIRTIO_BLK_T_OUT, 300, segs, { indirect: true });
    assert.equal(status, VIRTIO_BLK_S_OK);
    file = Deno.readFileSync(rig.path);
    assert.deepEqual(file.subarray(300 * 512, 300 * 512 + 4096), src);
    // And read back scattered.
    rig.mem.fill(DATA, 4096, 0);
    [status, len] = request(rig, VIRTIO_BLK_T_IN, 300, segs, { write: true, indirect: true });
    assert.equal(status, VIRTIO_BLK_S_OK);
    assert.equal(len, 4097);
    assert.deepEqual(rig.mem.slice(DATA, 4096), src);
  } finally {
    rig.close();
  }
});

Deno.test("virtio-blk rejects out-of-range and misaligned I/O with IOERR", () => {
  const rig = setup();
  try {
    let [status, len] = request(rig, VIRTIO_BLK_T_IN, DISK_SIZE / 512 - 1, [{
      addr: DATA,
      len: 1024,
    }], {
      write: true,
    });
    assert.equal(status, VIRTIO_BLK_S_IOERR);
    assert.equal(len, 1);
    [status] = request(rig, VIRTIO_BLK_T_OUT, 0, [{ addr: DATA, len: 100 }]);
    assert.equal(status, VIRTIO_BLK_S_IOERR);
    [status] = request(rig, 0x77, 0, []);
    assert.equal(status, VIRTIO_BLK_S_UNSUPP);
    // Sector beyond 2^53 bytes.
    [status] = request(rig, VIRTIO_BLK_T_IN, 2 ** 52, [{ addr: DATA, len: 512 }], { write: true });
    assert.equal(status, VIRTIO_BLK_S_IOERR);
  } finally {
    rig.close();
  }
});

Deno.test("virtio-blk flushes and answers GET_ID", () => {
  const rig = setup();
  try {
    let [status, len] = request(rig, VIRTIO_BLK_T_FLUSH, 0, []);
    assert.equal(status, VIRTIO_BLK_S_OK);
    assert.equal(len, 1);
    rig.mem.fill(DATA, 32, 0xaa);
    [status, len] = request(rig, VIRTIO_BLK_T_GET_ID, 0, [{ addr: DATA, len: 20 }], {
      write: true,
    });
    assert.equal(status, VIRTIO_BLK_S_OK);
    assert.equal(len, 21);
    const id = new TextDecoder().decode(rig.mem.slice(DATA, 17));
    assert.equal(id, "denovmm-disk-0001");
    assert.equal(rig.mem.readU8(DATA + 17), 0);
    assert.equal(rig.mem.readU8(DATA + 20), 0xaa);
  } finally {
    rig.close();
  }
});

Deno.test("virtio-blk discards and writes zeroes", () => {
  const rig = setup();
  try {
    const seg = DATA + 0x10000;
    const range = (i: number, sector: number, count: number, flags = 0) => {
      rig.mem.writeU64(seg + 16 * i, BigInt(sector));
      rig.mem.writeU32(seg + 16 * i + 8, count);
      rig.mem.writeU32(seg + 16 * i + 12, flags);
    };
    range(0, 16, 8);
    range(1, 64, 16, 1);
    let [status] = request(rig, VIRTIO_BLK_T_WRITE_ZEROES, 0, [{ addr: seg, len: 32 }]);
    assert.equal(status, VIRTIO_BLK_S_OK);
    const file = Deno.readFileSync(rig.path);
    assert.ok(file.subarray(16 * 512, 24 * 512).every((b) => b === 0));
    assert.ok(file.subarray(64 * 512, 80 * 512).every((b) => b === 0));
    assert.notEqual(file[24 * 512 + 1], 0);
    assert.equal(file.length, DISK_SIZE);
    range(0, 200, 8);
    [status] = request(rig, VIRTIO_BLK_T_DISCARD, 0, [{ addr: seg, len: 16 }]);
    assert.equal(status, VIRTIO_BLK_S_OK);
    assert.equal(Deno.statSync(rig.path).size, DISK_SIZE);
    range(0, 200, 8, 1); // unmap flag on discard
    [status] = request(rig, VIRTIO_BLK_T_DISCARD, 0, [{ addr: seg, len: 16 }]);
    assert.equal(status, VIRTIO_BLK_S_UNSUPP);
    range(0, DISK_SIZE / 512 - 4, 8); // past the end
    [status] = request(rig, VIRTIO_BLK_T_WRITE_ZEROES, 0, [{ addr: seg, len: 16 }]);
    assert.equal(status, VIRTIO_BLK_S_IOERR);
  } finally {
    rig.close();
  }
});

Deno.test("DISCARD and WRITE_ZEROES go to the aio backend as bounded fallocate pieces", () => {
  const seen: { op: string; offset: number; len: number; mode: number }[] = [];
  const sync = new SyncAio();
  let held: (() => void) | null = null;
  const aio: BlockAio = {
    submit(req: AioRequest, cb) {
      seen.push({ op: req.op, offset: req.offset ?? 0, len: req.len ?? 0, mode: req.mode ?? 0 });
      // Nothing runs inline: each piece completes only when the "loop" says so.
      return sync.submit(req, (r) => (held = () => cb(r)));
    },
  };
  const size = 40 << 20;
  const rig = setup({ aio, diskSize: size });
  try {
    const seg = DATA + 0x10000;
    const range = (i: number, sector: number, count: number, flags = 0) => {
      rig.mem.writeU64(seg + 16 * i, BigInt(sector));
      rig.mem.writeU32(seg + 16 * i + 8, count);
      rig.mem.writeU32(seg + 16 * i + 12, flags);
    };
    range(0, 0, size / 512); // the whole disk
    range(1, 8, 8, 1); // unmap
    blkHeader(rig.mem, HDR, VIRTIO_BLK_T_WRITE_ZEROES, 0);
    rig.mem.writeU8(STATUS, 0xee);
    rig.drv.add([{ addr: HDR, len: 16 }, { addr: seg, len: 32 }, {
      addr: STATUS,
      len: 1,
      write: true,
    }]);
    rig.drv.kick();
    // One piece at a time, each at most VIRTIO_BLK_DISCARD_PIECE.
    let steps = 0;
    while (held) {
      assert.equal(seen.length, steps + 1);
      assert.equal(rig.drv.collect().length, 0, "not complete before its last piece");
      const h: () => void = held;
      held = null;
      h();
      steps++;
    }
    assert.equal(steps, Math.ceil(size / VIRTIO_BLK_DISCARD_PIECE) + 1);
    assert.ok(seen.every((r) => r.op === "fallocate" && r.len <= VIRTIO_BLK_DISCARD_PIECE));
    assert.equal(seen.reduce((n, r) => n + r.len, 0), size + 4096);
    assert.equal(seen[seen.length - 1].mode & 0x2, 0x2, "unmap punches a hole");
    assert.equal(rig.drv.collect().length, 1);
    assert.equal(rig.mem.readU8(STATUS), VIRTIO_BLK_S_OK);
    const head = new Uint8Array(DISK_SIZE);
    using f = Deno.openSync(rig.path);
    f.readSync(head);
    assert.ok(head.every((b) => b === 0), "zeroed");
  } finally {
    rig.close();
  }
});

Deno.test("thousands of pieces completing inline (SyncAio) do not recurse", () => {
  let submits = 0;
  const sync = new SyncAio();
  const aio: BlockAio = {
    submit(req, cb) {
      submits++;
      // Stack depth stays flat however many pieces one request has.
      if (new Error().stack!.split("\n").length > 60) throw new Error("Recursing");
      return sync.submit(req, cb);
    },
  };
  const size = 2 ** 31; // sparse: 32 whole-disk DISCARD ranges = 4096 pieces
  const rig = setup({ aio, diskSize: size });
  try {
    const seg = DATA + 0x10000;
    for (let i = 0; i < 32; i++) {
      rig.mem.writeU64(seg + 16 * i, 0n);
      rig.mem.writeU32(seg + 16 * i + 8, size / 512);
      rig.mem.writeU32(seg + 16 * i + 12, 0);
    }
    const [status] = request(rig, VIRTIO_BLK_T_DISCARD, 0, [{ addr: seg, len: 16 * 32 }]);
    assert.equal(status, VIRTIO_BLK_S_OK);
    assert.equal(submits, (32 * size) / VIRTIO_BLK_DISCARD_PIECE);
  } finally {
    rig.close();
  }
});

Deno.test("a kick handles a bounded batch and yields to the loop for the rest", () => {
  const bhs: (() => void)[] = [];
  let scheduled = 0;
  const loop = {
    bh(cb: () => void) {
      bhs.push(cb);
      return { schedule: () => scheduled++ };
    },
  } as unknown as Pick<EventLoop, "bh">;
  const n = VIRTIO_BLK_BATCH + 40; // 2 descriptors each: fits a 256 ring
  const rig = setup({ loop, size: 256 });
  try {
    for (let i = 0; i < n; i++) {
      blkHeader(rig.mem, HDR + 16 * i, VIRTIO_BLK_T_IN, i % 64);
      rig.drv.add([{ addr: HDR + 16 * i, len: 16 }, { addr: STATUS + i, len: 1, write: true }], {
        indirect: false,
      });
    }
    rig.drv.kick();
    assert.equal(rig.drv.collect().length, VIRTIO_BLK_BATCH);
    assert.equal(scheduled, 1);
    assert.equal(bhs.length, 1);
    bhs[0]();
    assert.equal(rig.drv.collect().length, 40);
    assert.equal(scheduled, 1, "no more yields once the queue is empty");
    // While the BH is pending the device keeps notifications off (no kicks needed).
    assert.equal(rig.mem.readU16(rig.drv.used) & 1, 0, "notifications re-enabled at the end");
  } finally {
    rig.close();
  }
});

Deno.test("read-only virtio-blk refuses writes with IOERR", () => {
  const rig = setup({ ro: true });
  try {
    const f = rig.drv.deviceFeatures();
    assert.ok(f & featureBit(VIRTIO_BLK_F_RO));
    assert.equal(f & featureBit(VIRTIO_BLK_F_WRITE_ZEROES), 0n);
    rig.mem.fill(DATA, 512, 0x55);
    let [status] = request(rig, VIRTIO_BLK_T_OUT, 0, [{ addr: DATA, len: 512 }]);
    assert.equal(status, VIRTIO_BLK_S_IOERR);
    [status] = request(rig, VIRTIO_BLK_T_WRITE_ZEROES, 0, [{ addr: DATA, len: 16 }]);
    assert.equal(status, VIRTIO_BLK_S_IOERR);
    assert.deepEqual(Deno.readFileSync(rig.path), pattern(DISK_SIZE));
    [status] = request(rig, VIRTIO_BLK_T_IN, 0, [{ addr: DATA, len: 512 }], { write: true });
    assert.equal(status, VIRTIO_BLK_S_OK);
  } finally {
    rig.close();
  }
});

Deno.test("virtio-blk completes a full queue in one kick and keeps going", () => {
  const rig = setup({ size: 16 });
  try {
    const file = pattern(DISK_SIZE);
    for (let round = 0; round < 3; round++) {
      const heads: number[] = [];
      for (let i = 0;; i++) {
        blkHeader(rig.mem, HDR + 16 * i, VIRTIO_BLK_T_IN, i);
        const h = rig.drv.add([
          { addr: HDR + 16 * i, len: 16 },
          { addr: DATA + 512 * i, len: 512, write: true },
          { addr: STATUS + i, len: 1, write: true },
        ]);
        if (h < 0) break;
        heads.push(h);
      }
      assert.equal(heads.length, 5);
      rig.drv.kick();
      const used = rig.drv.collect();
      assert.deepEqual(used.map((u) => u.id), heads);
      for (let i = 0; i < heads.length; i++) {
        assert.equal(rig.mem.readU8(STATUS + i), VIRTIO_BLK_S_OK);
        assert.deepEqual(rig.mem.slice(DATA + 512 * i, 512), file.subarray(512 * i, 512 * i + 512));
      }
    }
  } finally {
    rig.close();
  }
});

Deno.test("virtio-pci raises INTx with ISR read-to-clear, and MSI-X with masking", () => {
  const rig = setup({ accept: ALL & ~featureBit(VIRTIO_RING_F_EVENT_IDX) });
  try {
    request(rig, VIRTIO_BLK_T_FLUSH, 0, []);
    assert.equal(rig.sink.level, true);
    assert.equal(rig.drv.read(0x1000, 1), 1);
    assert.equal(rig.sink.level, false);
    assert.equal(rig.drv.read(0x1000, 1), 0);
    // Switch to MSI-X: enable, vector 1 for queue 0 (masked at first).
    const cap = rig.dev.msix.capOffset;
    rig.dev.configWrite(PCI_COMMAND, new Uint8Array([PCI_COMMAND_MEMORY, 0]));
    rig.dev.configWrite(cap + PCI_MSIX_FLAGS, new Uint8Array([0, PCI_MSIX_FLAGS_ENABLE >> 8]));
    assert.ok(rig.dev.msix.enabled);
    const routed: number[] = [];
    rig.dev.msix.hooks.vectorChanged = (v, m, en) => {
      if (en && !m.masked) routed.push(v, m.data);
    };
    assert.ok(rig.drv.init(ALL & ~featureBit(VIRTIO_RING_F_EVENT_IDX), { vector: 1 }));
    request(rig, VIRTIO_BLK_T_FLUSH, 0, []);
    assert.equal(rig.sink.msixCount, 0);
    assert.ok(rig.dev.msix.pending(1));
    // Program and unmask vector 1: the pending message is delivered.
    rig.drv.write(0x4000 + 16 + 8, 4, 0x4041);
    rig.drv.write(0x4000 + 16 + 12, 4, 0);
    assert.deepEqual(rig.sink.vectors, [1]);
    assert.deepEqual(routed, [1, 0x4041]);
    assert.equal(rig.dev.msix.pending(1), false);
    assert.equal(rig.drv.read(0x6000, 4), 0);
    request(rig, VIRTIO_BLK_T_FLUSH, 0, []);
    assert.deepEqual(rig.sink.vectors, [1, 1]);
  } finally {
    rig.close();
  }
});

Deno.test("virtio-blk honours used_event with EVENT_IDX", () => {
  const rig = setup();
  try {
    assert.ok(rig.drv.eventIdx);
    rig.drv.setUsedEvent(0);
    request(rig, VIRTIO_BLK_T_FLUSH, 0, []); // used idx 0 -> 1: crosses event 0
    assert.equal(rig.sink.raised, 1);
    rig.drv.read(0x1000, 1);
    rig.drv.setUsedEvent(5);
    request(rig, VIRTIO_BLK_T_FLUSH, 0, []); // 1 -> 2: no interrupt
    request(rig, VIRTIO_BLK_T_FLUSH, 0, []);
    assert.equal(rig.sink.raised, 1);
    // The device asks for the next kick through avail_event.
    assert.equal(rig.mem.readU16(rig.drv.used + 4 + 8 * rig.drv.size), 3);
  } finally {
    rig.close();
  }
});

Deno.test("a malformed chain sets DEVICE_NEEDS_RESET and reset recovers", () => {
  const rig = setup();
  try {
    // Header only, no status byte.
    blkHeader(rig.mem, HDR, VIRTIO_BLK_T_IN, 0);
    rig.drv.add([{ addr: HDR, len: 16 }]);
    rig.drv.kick();
    assert.ok(rig.drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET);
    assert.equal(rig.logs.length, 1);
    rig.drv.kick();
    assert.equal(rig.logs.length, 1);
    assert.ok(rig.drv.init(ALL));
    assert.equal(rig.drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    const [status] = request(rig, VIRTIO_BLK_T_FLUSH, 0, []);
    assert.equal(status, VIRTIO_BLK_S_OK);
  } finally {
    rig.close();
  }
});

Deno.test("indirect descriptors need the feature", () => {
  const rig = setup({ accept: ALL & ~featureBit(VIRTIO_RING_F_INDIRECT_DESC) });
  try {
    blkHeader(rig.mem, HDR, VIRTIO_BLK_T_FLUSH, 0);
    rig.drv.add([{ addr: HDR, len: 16 }, { addr: STATUS, len: 1, write: true }], {
      indirect: true,
    });
    rig.drv.kick();
    assert.ok(rig.drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET);
  } finally {
    rig.close();
  }
});

Deno.test("openDisk gives clear errors and locks images", () => {
  assert.throws(() => openDisk(parseDiskOption("/nonexistent/x.img")), /does not exist/);
  const path = Deno.makeTempFileSync();
  try {
    Deno.writeFileSync(path, new Uint8Array(1000));
    assert.throws(() => openDisk(parseDiskOption(path)), /not a multiple of 512/);
    Deno.truncateSync(path, 4096);
    const a = openDisk(parseDiskOption(path));
    assert.throws(() => openDisk(parseDiskOption(path)), /in use by another process/);
    assert.throws(() => openDisk(parseDiskOption(path + ",ro")), /in use/);
    a.close();
    const r1 = openDisk(parseDiskOption(path + ",ro"));
    const r2 = openDisk(parseDiskOption(path + ",ro"));
    assert.equal(r2.size, 4096);
    assert.throws(() => openDisk(parseDiskOption(path)), /in use/);
    r1.close();
    r2.close();
    if (Deno.uid() !== 0) {
      Deno.chmodSync(path, 0o400);
      assert.throws(() => openDisk(parseDiskOption(path)), /No permission/);
    }
  } finally {
    Deno.removeSync(path);
  }
  assert.deepEqual(parseDiskOption("d.img,ro,aio=io_uring,iothread=2,cache=none"), {
    path: "d.img",
    readOnly: true,
    aio: "io_uring",
    iothread: 2,
    cache: "none",
  });
  assert.throws(() => parseDiskOption("d.img,aio=posix"), /Invalid disk aio/);
  assert.throws(() => parseDiskOption("d.img,bogus"), /Unknown disk option/);
});

Deno.test("a reset completes only after in-flight requests have finished", () => {
  const held: (() => void)[] = [];
  const sync = new SyncAio();
  let capacity = 2;
  const aio: BlockAio = {
    submit(req, cb) {
      if (held.length >= capacity) throw new AioQueueFullError("Aio queue is full");
      return sync.submit(req, (r) => held.push(() => cb(r)));
    },
  };
  const rig = setup({ aio });
  try {
    // Two requests in flight, a third refused by a full backend.
    for (let i = 0; i < 3; i++) {
      blkHeader(rig.mem, HDR + 16 * i, VIRTIO_BLK_T_IN, i);
      rig.drv.add([
        { addr: HDR + 16 * i, len: 16 },
        { addr: DATA + 512 * i, len: 512, write: true },
        { addr: STATUS + i, len: 1, write: true },
      ]);
    }
    rig.drv.kick();
    assert.equal(held.length, 2);
    assert.equal(rig.drv.collect().length, 0);
    // Completing one frees the backend: the stalled third request goes in.
    held.shift()!();
    assert.equal(rig.drv.collect().length, 1);
    assert.equal(held.length, 2);
    // Reset with two requests in flight: status stays non-zero until they finish.
    rig.drv.write(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    assert.notEqual(rig.drv.status(), 0);
    held.shift()!();
    assert.notEqual(rig.drv.status(), 0);
    held.shift()!();
    assert.equal(rig.drv.status(), 0);
    // Their completions went nowhere; the device works again after init.
    assert.equal(rig.mem.readU16(rig.drv.used + 2), 1);
    assert.ok(rig.drv.init(ALL));
    capacity = 8;
    blkHeader(rig.mem, HDR, VIRTIO_BLK_T_FLUSH, 0);
    rig.mem.writeU8(STATUS, 0xee);
    rig.drv.add([{ addr: HDR, len: 16 }, { addr: STATUS, len: 1, write: true }]);
    rig.drv.kick();
    assert.equal(held.length, 1);
    assert.equal(rig.mem.readU8(STATUS), 0xee); // status is written at completion
    held.shift()!();
    assert.equal(rig.drv.collect().length, 1);
    assert.equal(rig.mem.readU8(STATUS), VIRTIO_BLK_S_OK);
  } finally {
    rig.close();
  }
});
