/**
 * Main-loop latency under a guest-driven zeroing storm (issue 9 item 3): a
 * TypeScript guest driver keeps a virtio-blk queue full of WRITE_ZEROES
 * requests, each with 32 whole-disk ranges, on a tmpfs image (tmpfs has no
 * FALLOC_FL_ZERO_RANGE, so every byte is written as zeros), while a 1 ms
 * timer on the same loop measures how late its callbacks run. Rows: the
 * idle loop (baseline), the storm through the thread pool and io_uring
 * (the VMM's paths), and the storm served inline on the loop (SyncAio: what
 * the VMM did before DISCARD / WRITE_ZEROES went through aio).
 *
 * Run: `deno run -A bench/zeroing_storm_bench.ts` (BENCH_SECONDS=3 per row,
 * BENCH_DISK_MB=64, BENCH_QD=4, BENCH_DIR=/dev/shm).
 *
 * @module
 */
import { GuestMemory } from "../memory/guest_memory.ts";
import { MainLoop } from "../mainloop/main_loop.ts";
import { ThreadPool } from "../aio/thread_pool.ts";
import { IoUring, ioUringAvailable } from "../aio/io_uring.ts";
import { blkHeader, forwardingLink, TestDriver } from "../devices/virtio/_test_driver.ts";
import {
  featureBit,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_RING_F_EVENT_IDX,
} from "../devices/virtio/constants.ts";
import type { InterruptSink } from "../devices/virtio/device.ts";
import { VIRTIO_BLK_MAX_DISCARD_SEG, VirtioBlock } from "../devices/virtio/block.ts";
import { openDisk, parseDiskOption } from "../devices/virtio/disk_file.ts";
import { VirtioPciDevice, virtioPciSpecOf } from "../devices/virtio/pci.ts";
import { VirtioPciBackend } from "../devices/virtio/pci_backend.ts";
import { type BlockAio, SyncAio } from "../devices/virtio/sync_io.ts";

const SECONDS = Number(Deno.env.get("BENCH_SECONDS") ?? 3);
const DISK_MB = Number(Deno.env.get("BENCH_DISK_MB") ?? 64);
const QD = Number(Deno.env.get("BENCH_QD") ?? 4);
const DIR = Deno.env.get("BENCH_DIR") ?? "/dev/shm";
const PERIOD_MS = 1;
const HDR = 0x10_0000;
const SEGS = 0x20_0000;
const STATUS = 0x30_0000;

type Engine = "idle" | "threads" | "io_uring" | "sync";

interface Row {
  p50: number;
  p99: number;
  max: number;
  samples: number;
  zeroedGiB: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

async function measure(path: string, engine: Engine): Promise<Row> {
  const disk = openDisk(parseDiskOption(path));
  const mem = GuestMemory.allocate(8 << 20);
  const loop = new MainLoop();
  const running = loop.run();
  const pool = engine === "threads"
    ? new ThreadPool(loop)
    : engine === "io_uring"
    ? IoUring.create(loop, { entries: 64 })
    : null;
  const aio: BlockAio = pool ?? new SyncAio();
  const blk = new VirtioBlock({ disk, aio, queueSize: 64, loop });
  const sink: InterruptSink = {
    msix() {},
    intx(level: boolean) {
      if (level) reapBh.schedule();
    },
  };
  let be: VirtioPciBackend | null = null;
  const dev = new VirtioPciDevice(virtioPciSpecOf(blk), {
    interrupt: sink,
    link: forwardingLink(() => be),
  });
  const drv = new TestDriver(mem, dev, { size: 64 });
  const ranges = VIRTIO_BLK_MAX_DISCARD_SEG;
  for (let i = 0; i < ranges; i++) {
    mem.writeU64(SEGS + 16 * i, 0n);
    mem.writeU32(SEGS + 16 * i + 8, disk.size / 512); // the whole disk, no UNMAP
    mem.writeU32(SEGS + 16 * i + 12, 0);
  }
  const slotOf = new Map<number, number>();
  let stopAt = 0, inFlight = 0, done = 0, errors = 0;
  let finish: (() => void) | null = null;
  const submit = (slot: number) => {
    blkHeader(mem, HDR + 16 * slot, VIRTIO_BLK_T_WRITE_ZEROES, 0);
    const head = drv.add([
      { addr: HDR + 16 * slot, len: 16 },
      { addr: SEGS, len: 16 * ranges },
      { addr: STATUS + slot, len: 1, write: true },
    ]);
    slotOf.set(head, slot);
    inFlight++;
  };
  const reap = () => {
    drv.read(0x1000, 1); // ISR: lowers INTx
    let refill = 0;
    for (const u of drv.collect()) {
      const slot = slotOf.get(u.id)!;
      if (mem.readU8(STATUS + slot) !== VIRTIO_BLK_S_OK) errors++;
      done++;
      inFlight--;
      if (performance.now() < stopAt) {
        submit(slot);
        refill++;
      }
    }
    if (refill) kickBh.schedule();
    if (inFlight === 0 && finish) finish();
  };
  // Guest kicks and interrupt handling arrive as loop events, as from a vCPU.
  const kickBh = loop.bh(() => drv.kick(), "bench-kick");
  const reapBh = loop.bh(reap, "bench-reap");
  be = new VirtioPciBackend({ transport: dev, device: blk, mem });
  if (!drv.init(~featureBit(VIRTIO_RING_F_EVENT_IDX) & 0xffff_ffff_ffffn)) {
    throw new Error("Feature negotiation failed");
  }
  // The probe: a timer every PERIOD_MS; how late each callback runs.
  const late: number[] = [];
  let due = 0;
  const timer = loop.timer("monotonic", () => {
    const now = loop.now("monotonic");
    late.push((now - due) / 1e6);
    due = now + PERIOD_MS * 1e6;
    if (performance.now() < stopAt) timer.mod(due);
  });
  const start = performance.now();
  stopAt = start + SECONDS * 1000;
  due = loop.now("monotonic") + PERIOD_MS * 1e6;
  timer.mod(due);
  if (engine !== "idle") {
    const finished = new Promise<void>((r) => (finish = r));
    for (let s = 0; s < QD; s++) submit(s);
    kickBh.schedule();
    await finished;
  } else {
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
  }
  // Let the last probe fire.
  await new Promise((r) => setTimeout(r, 5 * PERIOD_MS));
  timer.del();
  await pool?.close();
  loop.stop();
  await running;
  loop.close();
  disk.close();
  mem.close();
  if (errors) throw new Error(`${errors} requests failed`);
  const sorted = late.sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? NaN,
    samples: sorted.length,
    zeroedGiB: (done * ranges * disk.size) / 2 ** 30,
  };
}

const path = Deno.makeTempFileSync({ dir: DIR, prefix: "zeroing_storm", suffix: ".img" });
Deno.truncateSync(path, DISK_MB << 20);
try {
  const rows: [string, Row | null][] = [];
  const uring = ioUringAvailable() === null;
  rows.push(["idle loop (baseline)", await measure(path, "idle")]);
  rows.push(["storm, aio=threads", await measure(path, "threads")]);
  rows.push(["storm, aio=io_uring", uring ? await measure(path, "io_uring") : null]);
  rows.push(["storm, inline on the loop (SyncAio)", await measure(path, "sync")]);
  const base = rows[0][1]!;
  const load = Deno.loadavg().map((l) => l.toFixed(1)).join(" ");
  console.log(
    `\nLoop timer lateness (ms) while a guest keeps ${QD} WRITE_ZEROES requests of ` +
      `${VIRTIO_BLK_MAX_DISCARD_SEG} whole-disk ranges in flight; ${DISK_MB} MiB image in ${DIR}, ` +
      `${SECONDS} s per row, ${PERIOD_MS} ms timer; ${navigator.hardwareConcurrency} CPUs, ` +
      `load average ${load}\n`,
  );
  console.log("| loop | p50 | p99 | max | p99 vs idle | samples | GiB zeroed |");
  console.log("|---|---:|---:|---:|---:|---:|---:|");
  for (const [name, r] of rows) {
    if (!r) {
      console.log(`| ${name} | n/a | n/a | n/a | n/a | 0 | n/a |`);
      continue;
    }
    console.log(
      `| ${name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(1)} | ` +
        `${(r.p99 / base.p99).toFixed(1)}x | ${r.samples} | ${r.zeroedGiB.toFixed(1)} |`,
    );
  }
} finally {
  Deno.removeSync(path);
}
