/**
 * The TypeScript virtio-net data path on the host alone (no KVM, no root):
 * a socketpair stands in for the tap, and a ring driver that allocates
 * nothing plays the guest, recycling the same buffers. Reports frames per
 * second and JS heap growth per frame for RX (tap read handler) and TX
 * (queue kick), for the current `devices/virtio/net.ts` and, in the same
 * process, a baseline version of that file taken from git
 * (`--baseline=REV`, default: the data path before it stopped allocating
 * per packet; `--baseline=none` skips it).
 *
 * Heap growth is measured after a forced GC with a 64 MiB young
 * generation, so no scavenge hides allocations during a round. Each
 * variant runs in a fresh process with those V8 flags (so neither shares
 * the other's JIT state), alternating, and the table shows medians.
 *
 * ```sh
 * deno run -A bench/net_path_bench.ts [--packets=20000] [--batch=32] [--rounds=3] \
 *   [--baseline=REV] [--json]
 * ```
 *
 * @module
 */
import { readvI32, writevI32 } from "../sys/libc.ts";
import { IOV_BYTES, setIovec } from "../devices/virtio/net_ram_map.ts";
import { featureBit, VRING_DESC_F_WRITE } from "../devices/virtio/constants.ts";
import {
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_HDR_SIZE,
} from "../devices/virtio/net_constants.ts";
import type { Tap } from "../sys/tun.ts";
import type { EventLoop } from "../mainloop/types.ts";
import type { VirtioDevice } from "../devices/virtio/device.ts";
import {
  HEAP_MEASURE_V8_FLAGS,
  type SocketNetRig,
  socketNetRig,
} from "../devices/virtio/_net_fake_tap.ts";

/** The data path before the no-allocation change (the commit it was made on). */
const DEFAULT_BASELINE = "0609ab6";
const V8_FLAGS = HEAP_MEASURE_V8_FLAGS;
const REPO = new URL("..", import.meta.url).pathname;

function arg(name: string, fallback: string): string {
  const a = Deno.args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
}

const gc = (globalThis as { gc?: () => void }).gc;
const ONLY = arg("only", "");

/** One variant measured in a fresh process (its own JIT state), with the V8 flags. */
async function child(only: string, rev: string): Promise<Row | null> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--v8-flags=${V8_FLAGS}`,
      new URL(import.meta.url).pathname,
      `--only=${only}`,
      `--baseline=${rev}`,
      `--packets=${PACKETS}`,
      `--batch=${BATCH}`,
    ],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`net_path_bench --only=${only} failed`);
  const text = new TextDecoder().decode(out.stdout).trim();
  return text === "null" ? null : JSON.parse(text) as Row;
}

type NetClass = new (o: { tap: Tap; loop: EventLoop; mac: Uint8Array }) =>
  & VirtioDevice
  & { stats: { rxPackets: number; txPackets: number } };

const PACKETS = Number(arg("packets", "20000"));
const FRAME = 1514;
const BATCH = Number(arg("batch", "32"));
const SLOT = 2048;
const RX_AREA = 0x40_0000;
const TX_AREA = 0x100_0000;
const FEATURES = featureBit(VIRTIO_NET_F_MRG_RXBUF) | featureBit(VIRTIO_NET_F_CSUM) |
  featureBit(VIRTIO_NET_F_GUEST_CSUM);

/** A guest side that allocates nothing: fixed buffers, used heads go straight back to avail. */
class RingDriver {
  readonly #r: SocketNetRig<VirtioDevice>;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  readonly size: number;
  #availIdx = 0;
  #lastUsed = 0;

  constructor(r: SocketNetRig<VirtioDevice>, index: number, area: number, len: number) {
    const q = r.drv.queues[index];
    this.#r = r;
    this.desc = q.desc;
    this.avail = q.avail;
    this.used = q.used;
    this.size = q.size;
    const flags = index === 0 ? VRING_DESC_F_WRITE : 0;
    for (let i = 0; i < q.size; i++) {
      const d = q.desc + 16 * i;
      r.mem.writeU32(d, area + i * SLOT);
      r.mem.writeU32(d + 4, 0);
      r.mem.writeU32(d + 8, len);
      r.mem.writeU16(d + 12, flags);
      r.mem.writeU16(d + 14, 0);
    }
  }

  /** Makes heads [from, from+n) available. */
  offer(from: number, n: number): void {
    const mem = this.#r.mem;
    for (let i = 0; i < n; i++) {
      mem.writeU16(this.avail + 4 + 2 * (this.#availIdx & (this.size - 1)), (from + i) % this.size);
      this.#availIdx = (this.#availIdx + 1) & 0xffff;
    }
    mem.writeU16(this.avail + 2, this.#availIdx);
  }

  /** Consumes the used ring, putting each chain back into the avail ring when `reoffer`. */
  recycle(reoffer: boolean): number {
    const mem = this.#r.mem;
    const idx = mem.readU16(this.used + 2);
    let n = 0;
    while (this.#lastUsed !== idx) {
      if (reoffer) {
        const head = mem.readU32(this.used + 4 + 8 * (this.#lastUsed & (this.size - 1)));
        mem.writeU16(this.avail + 4 + 2 * (this.#availIdx & (this.size - 1)), head);
        this.#availIdx = (this.#availIdx + 1) & 0xffff;
      }
      this.#lastUsed = (this.#lastUsed + 1) & 0xffff;
      n++;
    }
    mem.writeU16(this.avail + 2, this.#availIdx);
    return n;
  }
}

interface Row {
  rxPps: number;
  txPps: number;
  rxHeapPerPacket: number;
  txHeapPerPacket: number;
}

function measure(cls: NetClass): Row {
  const r = socketNetRig((o) => new cls(o)) as unknown as SocketNetRig<
    InstanceType<NetClass>
  >;
  try {
    if (!r.drv.init(FEATURES)) throw new Error("features refused");
    const rx = new RingDriver(r, 0, RX_AREA, SLOT);
    const tx = new RingDriver(r, 1, TX_AREA, VIRTIO_NET_HDR_SIZE + FRAME);
    rx.offer(0, rx.size);
    r.backend.notify(0);
    const frame = new Uint8Array(VIRTIO_NET_HDR_SIZE + FRAME);
    for (let i = VIRTIO_NET_HDR_SIZE; i < frame.length; i++) frame[i] = i & 0xff;
    // The peer's own I/O through one-entry iovecs with i32 results: an
    // isize result would be a BigInt per frame, charged to the device.
    const addrOf = (b: Uint8Array) => Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
    const frameIov = new Uint8Array(IOV_BYTES);
    const sink = new Uint8Array(65536);
    const sinkIov = new Uint8Array(IOV_BYTES);
    setIovec(new DataView(frameIov.buffer), 0, addrOf(frame), frame.length);
    setIovec(new DataView(sinkIov.buffer), 0, addrOf(sink), sink.length);
    const peer = r.tap.peer;
    const fd = r.tap.fd;

    const rxRound = (n: number) => {
      for (let done = 0; done < n; done += BATCH) {
        for (let k = 0; k < BATCH; k++) writevI32(peer, frameIov, 1);
        r.loop.readable(fd);
        rx.recycle(true);
      }
    };
    let nextTx = 0;
    tx.offer(0, 0);
    const txRound = (n: number) => {
      for (let done = 0; done < n; done += BATCH) {
        tx.offer(nextTx, BATCH);
        nextTx = (nextTx + BATCH) % tx.size;
        r.backend.notify(1);
        for (let k = 0; k < BATCH; k++) readvI32(peer, sinkIov, 1);
        tx.recycle(false);
      }
    };
    const run = (round: (n: number) => void, count: () => number) => {
      round(PACKETS); // warm up (JIT)
      gc!();
      const before = count();
      const h0 = Deno.memoryUsage().heapUsed;
      const t0 = performance.now();
      round(PACKETS);
      const ms = performance.now() - t0;
      const heap = (Deno.memoryUsage().heapUsed - h0) / PACKETS;
      const moved = count() - before;
      if (moved !== PACKETS) throw new Error(`moved ${moved} of ${PACKETS} frames`);
      return { pps: PACKETS / (ms / 1000), heap };
    };
    const a = run(rxRound, () => r.device.stats.rxPackets);
    const b = run(txRound, () => r.device.stats.txPackets);
    if (r.logs.length > 0) throw new Error(r.logs.join("\n"));
    return { rxPps: a.pps, txPps: b.pps, rxHeapPerPacket: a.heap, txHeapPerPacket: b.heap };
  } finally {
    r.close();
  }
}

function medianRow(rows: Row[]): Row {
  const med = (k: keyof Row) => {
    const v = rows.map((r) => r[k]).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  return {
    rxPps: med("rxPps"),
    txPps: med("txPps"),
    rxHeapPerPacket: med("rxHeapPerPacket"),
    txHeapPerPacket: med("txHeapPerPacket"),
  };
}

async function baselineClass(rev: string): Promise<NetClass | null> {
  if (rev === "none") return null;
  const out = await new Deno.Command("git", {
    args: ["-C", REPO, "show", `${rev}:devices/virtio/net.ts`],
    stderr: "piped",
  }).output().catch(() => null);
  if (!out?.success) {
    console.error(`(no baseline: git show ${rev}:devices/virtio/net.ts failed)`);
    return null;
  }
  const path = `${REPO}devices/virtio/_net_baseline_${Deno.pid}.ts`;
  await Deno.writeFile(path, out.stdout);
  try {
    return (await import(path)).VirtioNet as NetClass;
  } finally {
    await Deno.remove(path);
  }
}

const rev = arg("baseline", DEFAULT_BASELINE);
if (ONLY !== "") {
  if (!gc) throw new Error(`run with --v8-flags=${V8_FLAGS}`);
  const cls = ONLY === "current"
    ? (await import("../devices/virtio/net.ts")).VirtioNet as unknown as NetClass
    : await baselineClass(rev);
  console.log(JSON.stringify(cls ? measure(cls) : null));
  Deno.exit(0);
}
// Alternating fresh processes, median of each column: the host is shared and noisy.
const ROUNDS = Number(arg("rounds", "3"));
const nowRuns: Row[] = [], oldRuns: Row[] = [];
for (let i = 0; i < ROUNDS; i++) {
  nowRuns.push((await child("current", rev))!);
  const o = rev === "none" ? null : await child("baseline", rev);
  if (o) oldRuns.push(o);
}
const now = medianRow(nowRuns);
const old = oldRuns.length > 0 ? medianRow(oldRuns) : null;
if (Deno.args.includes("--json")) {
  console.log(JSON.stringify({ current: now, baseline: old, packets: PACKETS, frame: FRAME }));
} else {
  console.log(
    `${PACKETS} frames of ${FRAME} bytes each way, ${BATCH} per batch, median of ${ROUNDS}\n`,
  );
  console.log(
    "| code | RX frames/s | TX frames/s | RX heap B/frame | TX heap B/frame |\n" +
      "|---|---|---|---|---|",
  );
  const line = (name: string, x: Row) =>
    console.log(
      `| ${name} | ${x.rxPps.toFixed(0)} | ${x.txPps.toFixed(0)} | ${
        x.rxHeapPerPacket.toFixed(1)
      } | ${x.txHeapPerPacket.toFixed(1)} |`,
    );
  line("current", now);
  if (old) {
    line(`baseline ${rev}`, old);
    console.log(
      `\nratio current/baseline: RX ${(now.rxPps / old.rxPps).toFixed(2)}x, TX ${
        (now.txPps / old.txPps).toFixed(2)
      }x frames/s`,
    );
  }
}
