/**
 * virtio-blk throughput: 4 KiB random reads (O_DIRECT) through the whole
 * device path (a TypeScript guest driver on the split ring, the virtio-pci
 * transport, VirtioBlock, an aio backend) against fio on the same file.
 * Prints a markdown table with ratios from one run, and multiqueue
 * (VIRTIO_BLK_F_MQ, requests spread round-robin over 4 queues, each kicked
 * on its own) against one queue at the same depth.
 *
 * A second table reads as Linux's virtio-blk driver does when a guest reads
 * a file: 1 MiB requests of 254 scattered 4 KiB pages in an indirect table,
 * sequential, one at a time, from a file in the host's page cache
 * (`cache=writeback`): the VMM's path (aio=threads behind the page-cache
 * path, aio/page_cache_inline.ts) against the pool alone, fio psync and the
 * bare preadv of those pages.
 *
 * Run: `deno run -A bench/virtio_blk_bench.ts` (BENCH_BIG_ONLY=1 for the second
 * table alone; BENCH_QD1_ONLY=1 for the QD1 aio=threads rows alone; BENCH_SECONDS=3 per row,
 * BENCH_FILE_MB=256, BENCH_DIR=/tmp; needs fio on PATH for the fio columns).
 * The guest's interrupt handler runs as a bottom half (one loop iteration
 * later, as a kick from a vCPU thread would arrive); BENCH_REAP=inline runs
 * it inside the interrupt callback instead.
 *
 * @module
 */
import { GuestMemory } from "../memory/guest_memory.ts";
import { MainLoop } from "../mainloop/main_loop.ts";
import { ThreadPool } from "../aio/thread_pool.ts";
import { IoUring, ioUringAvailable } from "../aio/io_uring.ts";
import { blkHeader, type Segment, TestDriver, wireDevice } from "../devices/virtio/_test_driver.ts";
import {
  featureBit,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_IN,
  VIRTIO_RING_F_EVENT_IDX,
} from "../devices/virtio/constants.ts";
import type { InterruptSink } from "../devices/virtio/device.ts";
import { VirtioBlock } from "../devices/virtio/block.ts";
import { openDisk, parseDiskOption } from "../devices/virtio/disk_file.ts";
import { type BlockAio, SyncAio } from "../devices/virtio/sync_io.ts";
import { CLOCK_MONOTONIC, clockNs } from "../mainloop/clock.ts";
import type { AioCallback, AioRequest } from "../aio/types.ts";
import { PageCacheInline } from "../aio/page_cache_inline.ts";
import { HostIovec } from "../aio/iovec.ts";
import { libc } from "../sys/libc.ts";

const SECONDS = Number(Deno.env.get("BENCH_SECONDS") ?? 3);
const FILE_MB = Number(Deno.env.get("BENCH_FILE_MB") ?? 256);
const DIR = Deno.env.get("BENCH_DIR") ?? "/tmp";
/** Reap in the interrupt callback itself rather than in a later loop iteration. */
const REAP_INLINE = Deno.env.get("BENCH_REAP") === "inline";
const BS = 4096;
/** BENCH_HOPS_ONLY=1: only the per-hop traces. */
const HOPS_ONLY = Deno.env.get("BENCH_HOPS_ONLY") === "1";
/** BENCH_QD1_ONLY=1: only the QD1 aio=threads rows (issue 14's row) and exit. */
const QD1_ONLY = Deno.env.get("BENCH_QD1_ONLY") === "1";
/** BENCH_BIG_ONLY=1: only the guest-sized reads. */
const BIG_ONLY = Deno.env.get("BENCH_BIG_ONLY") === "1";
const QD1_ROUNDS = Number(Deno.env.get("BENCH_QD1_ROUNDS") ?? 3);
const HDR = 0x10_0000;
const STATUS = 0x20_0000;
const DATA = 0x40_0000;

function makeFile(): string {
  const path = Deno.makeTempFileSync({ dir: DIR, prefix: "virtio_blk_bench", suffix: ".img" });
  const f = Deno.openSync(path, { write: true });
  const chunk = new Uint8Array(1 << 20);
  crypto.getRandomValues(chunk.subarray(0, 65536));
  for (let i = 0; i < FILE_MB; i++) f.writeSync(chunk);
  f.syncSync();
  f.close();
  return path;
}

/** IOPS of 4 KiB random reads at queue depth `qd` through virtio-blk, over `queues` queues. */
async function virtio(
  path: string,
  backend: "sync" | "threads" | "io_uring",
  qd: number,
  queues = 1,
): Promise<number> {
  const disk = openDisk(parseDiskOption(`${path},ro,cache=none`));
  const mem = GuestMemory.allocate(64 << 20);
  const loop = new MainLoop();
  const running = loop.run();
  const pool = backend === "threads"
    ? new ThreadPool(loop, { minThreads: qd, maxThreads: qd })
    : backend === "io_uring"
    ? IoUring.create(loop, { entries: 256 })
    : null;
  const aio: BlockAio = pool ?? new SyncAio();
  const blk = new VirtioBlock({ disk, aio, queueSize: 256, numQueues: queues });
  const sink: InterruptSink = {
    msix() {},
    intx(level: boolean) {
      // SyncAio completes inside the kick, and the driver reaps right after it.
      if (!level || backend === "sync") return;
      if (REAP_INLINE) reap();
      else reapBh.schedule();
    },
  };
  const { dev } = wireDevice(blk, mem, { interrupt: sink });
  const blocks = disk.size / BS;
  const slotOf = new Map<number, number>();
  let done = 0, errors = 0, stopAt = 0, inFlight = 0;
  let finish: (() => void) | null = null;
  const drv = new TestDriver(
    mem,
    dev,
    queues === 1 ? { size: 256 } : { sizes: Array(queues).fill(256) },
  );
  // Which queues got new chains since their last kick.
  const toKick = new Uint8Array(queues);
  const submit = (slot: number) => {
    const q = slot % queues;
    blkHeader(
      mem,
      HDR + 16 * slot,
      VIRTIO_BLK_T_IN,
      Math.floor(Math.random() * blocks) * (BS / 512),
    );
    const head = drv.queues[q].add([
      { addr: HDR + 16 * slot, len: 16 },
      { addr: DATA + BS * slot, len: BS, write: true },
      { addr: STATUS + slot, len: 1, write: true },
    ]);
    slotOf.set(q * 65536 + head, slot);
    toKick[q] = 1;
    inFlight++;
  };
  const kickAll = () => {
    for (let q = 0; q < queues; q++) {
      if (toKick[q]) drv.kick(q);
      toKick[q] = 0;
    }
  };
  const reap = () => {
    drv.read(0x1000, 1); // ISR: lowers INTx
    for (let q = 0; q < queues; q++) {
      for (const u of drv.queues[q].collect()) {
        const slot = slotOf.get(q * 65536 + u.id)!;
        if (mem.readU8(STATUS + slot) !== VIRTIO_BLK_S_OK) errors++;
        done++;
        inFlight--;
        if (performance.now() < stopAt) submit(slot);
      }
    }
    kickAll();
    if (inFlight === 0 && finish) finish();
  };
  const reapBh = loop.bh(reap, "bench-reap");
  if (!drv.init(~featureBit(VIRTIO_RING_F_EVENT_IDX) & 0xffff_ffff_ffffn)) {
    throw new Error("Feature negotiation failed");
  }
  const start = performance.now();
  stopAt = start + SECONDS * 1000;
  if (backend === "sync") {
    // Each kick completes inline: the guest refills and kicks again.
    for (let s = 0; s < qd; s++) submit(s);
    while (inFlight > 0) {
      kickAll();
      reap();
      if (done % 4096 === 0) await Promise.resolve();
    }
  } else {
    const finished = new Promise<void>((r) => (finish = r));
    for (let s = 0; s < qd; s++) submit(s);
    kickAll();
    await finished;
  }
  const secs = (performance.now() - start) / 1000;
  await pool?.close();
  loop.stop();
  await running;
  loop.close();
  disk.close();
  if (errors) throw new Error(`${errors} requests failed`);
  return done / secs;
}

const HOPS = [
  "driver kick -> device submits to aio",
  "submit -> pool thread starts preadv (wake-up)",
  "preadv (O_DIRECT 4 KiB)",
  "preadv returns -> completion runs on the loop (wake-up)",
  "completion -> used ring + interrupt",
  "interrupt -> driver reaps (next loop iteration)",
];

/**
 * One 4 KiB read at a time through the whole path, stamped at each hop
 * (CLOCK_MONOTONIC; the pool threads stamp their system call): medians in µs.
 */
async function hopTrace(
  path: string,
  rounds: number,
  options: { thinkNs?: number } = {},
): Promise<number[][]> {
  const think = options.thinkNs ?? 100_000;
  const disk = openDisk(parseDiskOption(`${path},ro,cache=none`));
  const mem = GuestMemory.allocate(64 << 20);
  const loop = new MainLoop();
  const running = loop.run();
  const stamps = new SharedArrayBuffer(256 * 16);
  const st = new Float64Array(stamps);
  const pool = new ThreadPool(loop, {
    minThreads: 1,
    maxThreads: 1,
    queueSize: 256,
    stamps,
  });
  const t = new Float64Array(7);
  let slot = 0;
  const aio: BlockAio = {
    submit(req: AioRequest, cb: AioCallback): number {
      t[1] = clockNs(CLOCK_MONOTONIC);
      const h = pool.submit(req, (r) => {
        t[4] = clockNs(CLOCK_MONOTONIC);
        cb(r);
      });
      slot = h % 256;
      return h;
    },
  };
  const blk = new VirtioBlock({ disk, aio, queueSize: 256 });
  const blocks = disk.size / BS;
  const hops: number[][] = HOPS.map(() => []);
  let next: (() => void) | null = null;
  // deno-lint-ignore prefer-const
  let drv: TestDriver;
  const reapBh = loop.bh(() => {
    t[6] = clockNs(CLOCK_MONOTONIC);
    drv.read(0x1000, 1);
    for (const _ of drv.collect()) next?.();
  });
  const sink: InterruptSink = {
    msix() {},
    intx(level: boolean) {
      if (!level) return;
      t[5] = clockNs(CLOCK_MONOTONIC);
      reapBh.schedule();
    },
  };
  drv = new TestDriver(mem, wireDevice(blk, mem, { interrupt: sink }).dev, { size: 256 });
  if (!drv.init(~featureBit(VIRTIO_RING_F_EVENT_IDX) & 0xffff_ffff_ffffn)) {
    throw new Error("Feature negotiation failed");
  }
  // Each read is kicked from a loop timer `thinkNs` (100 µs) after the
  // previous one completed, as a guest thinking between reads would; with 0,
  // on the next loop iteration, as the IOPS rows do.
  let r = 0;
  const { promise: finished, resolve: finish } = Promise.withResolvers<void>();
  const kick = loop.timer("monotonic", () => {
    blkHeader(mem, HDR, VIRTIO_BLK_T_IN, Math.floor(Math.random() * blocks) * (BS / 512));
    drv.add([
      { addr: HDR, len: 16 },
      { addr: DATA, len: BS, write: true },
      { addr: STATUS, len: 1, write: true },
    ]);
    t[0] = clockNs(CLOCK_MONOTONIC);
    drv.kick();
  });
  next = () => {
    t[2] = st[2 * slot];
    t[3] = st[2 * slot + 1];
    if (r >= 50) { // after a warm-up
      for (let h = 0; h < HOPS.length; h++) hops[h].push(t[h + 1] - t[h]);
    }
    if (++r === rounds) finish();
    else kick.mod(loop.now("monotonic") + think);
  };
  kick.mod(loop.now("monotonic") + think);
  await finished;
  await pool.close();
  loop.stop();
  await running;
  loop.close();
  disk.close();
  return hops;
}

/** fio's read statistics for one job on `path` with `args` beside the common ones, or null. */
async function fioRead(
  path: string,
  args: string[],
): Promise<{ iops: number; bw_bytes: number } | null> {
  try {
    const out = await new Deno.Command("fio", {
      args: [
        "--name=bench",
        `--filename=${path}`,
        "--readonly",
        "--time_based",
        `--runtime=${SECONDS}`,
        "--output-format=json",
        ...args,
      ],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return null;
    return JSON.parse(new TextDecoder().decode(out.stdout)).jobs[0].read;
  } catch {
    return null;
  }
}

/** IOPS fio reaches with the same workload. */
async function fio(
  path: string,
  engine: string,
  depth: number,
  jobs: number,
): Promise<number | null> {
  const read = await fioRead(path, [
    "--rw=randread",
    `--bs=${BS}`,
    "--direct=1",
    `--ioengine=${engine}`,
    `--iodepth=${depth}`,
    `--numjobs=${jobs}`,
    "--thread",
    "--group_reporting",
  ]);
  return read?.iops ?? null;
}

function printHops(what: string, hops: number[][]): void {
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const p99 = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length * 0.99)];
  console.log(
    `\nOne read at a time, aio=threads, ${what}: per hop (${hops[0].length} reads, µs)\n`,
  );
  console.log("| hop | p50 µs | p99 µs |");
  console.log("|---|---:|---:|");
  let total = 0;
  for (let h = 0; h < HOPS.length; h++) {
    total += med(hops[h]);
    console.log(
      `| ${HOPS[h]} | ${(med(hops[h]) / 1e3).toFixed(1)} | ${(p99(hops[h]) / 1e3).toFixed(1)} |`,
    );
  }
  console.log(`| sum of medians | ${(total / 1e3).toFixed(1)} | |`);
}

const fmt = (n: number | null) => (n === null ? "n/a" : Math.round(n).toLocaleString("en-US"));
const ratio = (
  a: number | null,
  b: number | null,
) => (a === null || b === null ? "n/a" : `${(a / b).toFixed(2)}x`);

/** The IOPS tables: QD1 and QD32 against fio, multiqueue against one queue. */
async function tables(): Promise<void> {
  // Warm the host's caches so that the first row is not penalised.
  await fio(path, "psync", 1, 1);
  const rows: string[] = [];
  // target: issue 14's row for this comparison, "" where the row is context.
  const row = (
    name: string,
    ours: number | null,
    ref: string,
    theirs: number | null,
    target = "",
  ) =>
    rows.push(
      `| ${name} | ${fmt(ours)} | ${ref} | ${fmt(theirs)} | ${ratio(ours, theirs)} | ${target} |`,
    );
  // QD1, aio=threads: alternating with fio psync, medians (the host's load
  // drifts between rows; single 3 s rows swung 0.54x-0.68x).
  // fio's posixaio engine is glibc's POSIX AIO: a helper thread reads and
  // the submitter waits for it in aio_suspend, the same two hand-offs
  // (submit -> thread, completion -> submitter) every aio=threads path makes,
  // QEMU's thread pool included, here in C.
  const q1: Record<"ours" | "fio" | "posixaio", number[]> = { ours: [], fio: [], posixaio: [] };
  for (let i = 0; i < QD1_ROUNDS; i++) {
    q1.ours.push(await virtio(path, "threads", 1));
    q1.fio.push((await fio(path, "psync", 1, 1)) ?? NaN);
    q1.posixaio.push((await fio(path, "posixaio", 1, 1)) ?? NaN);
  }
  const mid = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  row(
    `QD1, aio=threads (1 thread; median of ${QD1_ROUNDS} alternating with fio)`,
    mid(q1.ours),
    "fio psync, numjobs=1",
    q1.fio.some(isNaN) ? null : mid(q1.fio),
    ">= 0.8x",
  );
  row(
    `QD1, aio=threads (the same runs)`,
    mid(q1.ours),
    "fio posixaio, iodepth=1 (glibc: a thread reads, two hand-offs, in C)",
    q1.posixaio.some(isNaN) ? null : mid(q1.posixaio),
  );
  if (QD1_ONLY) {
    console.log("| virtio-blk path | IOPS | fio reference | IOPS | ratio | target |");
    console.log("|---|---:|---|---:|---:|---|");
    for (const r of rows) console.log(r);
    return;
  }
  row(
    `QD32, aio=threads (32 threads)`,
    await virtio(path, "threads", 32),
    `fio psync, numjobs=32`,
    await fio(path, "psync", 1, 32),
  );
  const uring = ioUringAvailable() === null;
  for (const qd of [1, 32]) {
    row(
      `QD${qd}, aio=io_uring`,
      uring ? await virtio(path, "io_uring", qd) : null,
      `fio io_uring, iodepth=${qd}`,
      await fio(path, "io_uring", qd, 1),
      qd === 1 ? ">= 0.8x" : "",
    );
  }
  row(
    "QD1, SyncAio (inline on the loop)",
    await virtio(path, "sync", 1),
    "fio psync, numjobs=1",
    await fio(path, "psync", 1, 1),
  );
  const load = Deno.loadavg().map((l) => l.toFixed(1)).join(" ");
  console.log(
    `\n4 KiB random reads, O_DIRECT, ${FILE_MB} MiB file in ${DIR}, ${SECONDS} s per row, IOPS; ` +
      `${navigator.hardwareConcurrency} CPUs, load average ${load}\n`,
  );
  console.log("| virtio-blk path | IOPS | fio reference | IOPS | ratio | target |");
  console.log("|---|---:|---|---:|---:|---|");
  for (const r of rows) console.log(r);
  if (!uring) console.log(`\nio_uring rows: ${ioUringAvailable()}`);
  // Multiqueue against one queue, same depth, same engine, interleaved.
  const mq: string[] = [];
  for (const backend of uring ? ["threads", "io_uring"] as const : ["threads"] as const) {
    // Alternating runs, median of each: the host's load drifts between rows.
    const ones: number[] = [], fours: number[] = [];
    for (let i = 0; i < 3; i++) {
      ones.push(await virtio(path, backend, 32, 1));
      fours.push(await virtio(path, backend, 32, 4));
    }
    const one = ones.sort((x, y) => x - y)[1];
    const four = fours.sort((x, y) => x - y)[1];
    mq.push(`| QD32, aio=${backend} | ${fmt(one)} | ${fmt(four)} | ${ratio(four, one)} |`);
  }
  console.log(
    "\nMultiqueue (num-queues=4, chains round-robin) vs one queue, IOPS (median of 3 alternating runs)\n",
  );
  console.log("| path | 1 queue | 4 queues | 4 vs 1 |");
  console.log("|---|---:|---:|---:|");
  for (const r of mq) console.log(r);
}

/** Pages per guest-sized request: Linux fills a request up to seg_max (queue size - 2). */
const BIG_PAGES = 254;
const BIG_BYTES = BIG_PAGES * BS;
const BIG_TABLE = 0x30_0000;

/**
 * MiB/s of sequential guest-sized reads (BIG_PAGES pages, every other guest
 * page, indirect) through the device, one at a time, buffered.
 */
async function bigReads(path: string, how: "inline" | "threads"): Promise<number> {
  const disk = openDisk(parseDiskOption(`${path},ro`));
  const mem = GuestMemory.allocate(64 << 20);
  const loop = new MainLoop();
  const running = loop.run();
  const pool = new ThreadPool(loop, { minThreads: 1, maxThreads: 1 });
  const aio: BlockAio = how === "inline" ? new PageCacheInline(pool, disk.fd) : pool;
  const blk = new VirtioBlock({ disk, aio, queueSize: 256 });
  let done = 0, stopAt = 0;
  let finish: (() => void) | null = null;
  const perFile = Math.floor(disk.size / BIG_BYTES);
  const segs: Segment[] = [{ addr: HDR, len: 16 }];
  for (let i = 0; i < BIG_PAGES; i++) segs.push({ addr: DATA + 2 * BS * i, len: BS, write: true });
  segs.push({ addr: STATUS, len: 1, write: true });
  const submit = () => {
    blkHeader(mem, HDR, VIRTIO_BLK_T_IN, (done % perFile) * (BIG_BYTES / 512));
    drv.queues[0].addIndirectAt(BIG_TABLE, segs);
    drv.kick(0);
  };
  const reap = () => {
    drv.read(0x1000, 1);
    for (const _ of drv.queues[0].collect()) {
      if (mem.readU8(STATUS) !== VIRTIO_BLK_S_OK) throw new Error("read failed");
      done++;
      if (performance.now() < stopAt) submit();
      else finish?.();
    }
  };
  // Either way the driver reaps in a bottom half, one loop iteration after
  // the interrupt, as the IOPS rows do.
  const reapBh = loop.bh(reap, "bench-reap");
  const sink: InterruptSink = { msix() {}, intx: (level) => void (level && reapBh.schedule()) };
  const drv = new TestDriver(mem, wireDevice(blk, mem, { interrupt: sink }).dev, { size: 256 });
  if (!drv.init(~featureBit(VIRTIO_RING_F_EVENT_IDX) & 0xffff_ffff_ffffn)) {
    throw new Error("Feature negotiation failed");
  }
  const start = performance.now();
  stopAt = start + SECONDS * 1000;
  const finished = new Promise<void>((r) => (finish = r));
  submit();
  await finished;
  const secs = (performance.now() - start) / 1000;
  await pool.close();
  loop.stop();
  await running;
  loop.close();
  disk.close();
  return (done * BIG_BYTES) / (1 << 20) / secs;
}

/** MiB/s of the same reads as bare preadv calls into the same page pattern (the copy alone). */
function bigBare(path: string): number {
  const disk = openDisk(parseDiskOption(`${path},ro`));
  const buf = new Uint8Array(2 * BIG_BYTES);
  const base = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
  const v = new HostIovec(BIG_PAGES);
  for (let i = 0; i < BIG_PAGES; i++) v.push(base + 2 * BS * i, BS);
  const p = Deno.UnsafePointer.create(v.address);
  const perFile = Math.floor(disk.size / BIG_BYTES);
  let done = 0;
  const start = performance.now(), stopAt = start + SECONDS * 1000;
  while (performance.now() < stopAt) {
    if (Number(libc.preadv(disk.fd, p, BIG_PAGES, BigInt((done % perFile) * BIG_BYTES))) < 0) {
      throw new Error("preadv failed");
    }
    done++;
  }
  const secs = (performance.now() - start) / 1000;
  disk.close();
  return (done * BIG_BYTES) / (1 << 20) / secs;
}

/** MiB/s of fio psync sequential reads of the same size, buffered. */
async function fioBig(path: string): Promise<number | null> {
  const read = await fioRead(path, [
    "--rw=read",
    `--bs=${BIG_BYTES}`,
    "--direct=0",
    "--invalidate=0", // the file stays in the page cache, as for the VMM
    "--ioengine=psync",
  ]);
  return read === null ? null : read.bw_bytes / (1 << 20);
}

/** The guest-sized table: medians of QD1_ROUNDS rounds, each row once per round. */
async function bigTable(): Promise<void> {
  const r: Record<"inline" | "threads" | "fio" | "bare", number[]> = {
    inline: [],
    threads: [],
    fio: [],
    bare: [],
  };
  for (let i = 0; i < QD1_ROUNDS; i++) {
    r.inline.push(await bigReads(path, "inline"));
    r.threads.push(await bigReads(path, "threads"));
    r.fio.push((await fioBig(path)) ?? NaN);
    r.bare.push(bigBare(path));
  }
  const mid = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const mib = (n: number) => (isNaN(n) ? "n/a" : n.toFixed(0));
  const vs = (a: number, b: number) => (isNaN(a) || isNaN(b) ? "n/a" : `${(a / b).toFixed(2)}x`);
  const [inline, threads, fioMid, bare] = [mid(r.inline), mid(r.threads), mid(r.fio), mid(r.bare)];
  console.log(
    `\nGuest-sized reads: 1 MiB requests of ${BIG_PAGES} scattered 4 KiB pages (indirect), ` +
      `sequential, QD1, file in the host page cache, MiB/s (median of ${QD1_ROUNDS} rounds)\n`,
  );
  console.log("| path | MiB/s | vs fio psync (bs 1016 KiB) | vs bare preadv |");
  console.log("|---|---:|---:|---:|");
  const line = (name: string, v: number) =>
    console.log(`| ${name} | ${mib(v)} | ${vs(v, fioMid)} | ${vs(v, bare)} |`);
  line("aio=threads behind the page-cache path (the VMM's default)", inline);
  line("aio=threads, the pool alone (every request two hand-offs)", threads);
  line("fio psync, buffered", fioMid);
  line("bare preadv of the same pages (no device)", bare);
}

const path = makeFile();
try {
  if (!HOPS_ONLY && !BIG_ONLY) await tables();
  if (!HOPS_ONLY && !QD1_ONLY) await bigTable();
  const rounds = Number(Deno.env.get("BENCH_HOP_ROUNDS") ?? 1000);
  const traces = BIG_ONLY || QD1_ONLY ? [] : [
    ["back to back (as the QD1 row)", { thinkNs: 0 }],
    ["100 µs apart (a guest thinking between reads)", { thinkNs: 100_000 }],
  ] as const;
  for (const [what, opts] of traces) printHops(what, await hopTrace(path, rounds, opts));
} finally {
  Deno.removeSync(path);
}
