// The virtio-net data path without root: a socketpair stands in for the tap
// (one frame per read/writev, as a tap), the test driver plays the guest.
import assert from "node:assert/strict";
import { libc } from "../../sys/libc.ts";
import { featureBit, VIRTIO_CONFIG_S_NEEDS_RESET } from "./constants.ts";
import {
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_SIZE,
} from "./net_constants.ts";
import { NET_RX_QUEUE, NET_TX_QUEUE, VirtioNet } from "./net.ts";
import { HEAP_MEASURE_V8_FLAGS, type SocketNetRig, socketNetRig } from "./_net_fake_tap.ts";
import type { Segment } from "./_test_driver.ts";

const RX_AREA = 0x40_0000;
const TX_AREA = 0x80_0000;
const FEATURES = featureBit(VIRTIO_NET_F_MRG_RXBUF) | featureBit(VIRTIO_NET_F_CSUM) |
  featureBit(VIRTIO_NET_F_GUEST_CSUM);

function pattern(len: number, seed: number): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

function header(flags: number, gsoType: number, csumStart = 0, csumOffset = 0): Uint8Array {
  const h = new Uint8Array(VIRTIO_NET_HDR_SIZE);
  const v = new DataView(h.buffer);
  h[0] = flags;
  h[1] = gsoType;
  v.setUint16(6, csumStart, true);
  v.setUint16(8, csumOffset, true);
  v.setUint16(10, 0xeeee, true); // num_buffers from the host side: the device overwrites it
  return h;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) out.set(p, (off += p.length) - p.length);
  return out;
}

/** Sends one frame into the device's tap from the test's end. */
function peerSend(r: SocketNetRig<VirtioNet>, bytes: Uint8Array): void {
  assert.equal(Number(libc.write(r.tap.peer, bytes, BigInt(bytes.length))), bytes.length);
}

/** Reads one frame the device wrote to its tap, or null. */
function peerRecv(r: SocketNetRig<VirtioNet>): Uint8Array | null {
  const buf = new Uint8Array(70000);
  const n = Number(libc.read(r.tap.peer, buf, BigInt(buf.length)));
  return n < 0 ? null : buf.slice(0, n);
}

/** Gathers what the device wrote into an RX chain. */
function gather(r: SocketNetRig<VirtioNet>, segs: Segment[], len: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const s of segs) {
    const n = Math.min(s.len, len);
    parts.push(r.mem.slice(s.addr, n).slice());
    len -= n;
  }
  return concat(...parts);
}

Deno.test("socket tap RX: frames land byte-exact, a big one spans mergeable buffers", () => {
  const r = socketNetRig((o) => new VirtioNet(o), [64, 64]);
  try {
    assert.ok(r.drv.init(FEATURES));
    const q = r.drv.queues[NET_RX_QUEUE];
    // Chains of two descriptors: 11 + 1000 bytes, so num_buffers (bytes 10-11)
    // straddles them, and the frame data starts in the second one.
    const chains = new Map<number, Segment[]>();
    for (let i = 0; i < 8; i++) {
      const a = RX_AREA + i * 0x1000;
      const segs = [{ addr: a, len: 11, write: true }, { addr: a + 0x100, len: 1000, write: true }];
      r.mem.fill(a, 0x1000, 0xcc);
      chains.set(q.add(segs), segs);
    }
    r.drv.kick(NET_RX_QUEUE);
    const small = concat(header(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 34, 16), pattern(100, 1));
    const big = concat(header(0, 0), pattern(2500, 2));
    peerSend(r, small);
    peerSend(r, big);
    const irqs = r.sink.raised;
    assert.ok(r.loop.readable(r.tap.fd), "the device reads its tap");
    const used = q.collect();
    assert.equal(used.length, 4, "1 buffer for the small frame, 3 for the big one");
    const got = used.map((u) => gather(r, chains.get(u.id)!, u.len));
    // The small frame: header as sent (GUEST_CSUM keeps NEEDS_CSUM), num_buffers 1.
    assert.equal(got[0].length, small.length);
    assert.deepEqual(got[0].subarray(0, 10), small.subarray(0, 10));
    assert.equal(got[0][10] | (got[0][11] << 8), 1);
    assert.deepEqual(got[0].subarray(12), small.subarray(12));
    // The big frame: three buffers published together, num_buffers 3 in the first.
    assert.deepEqual(used.slice(1).map((u) => u.len), [1011, 1011, big.length - 2022]);
    const joined = concat(...got.slice(1));
    assert.equal(joined[10] | (joined[11] << 8), 3);
    assert.deepEqual(joined.subarray(12), big.subarray(12));
    assert.equal(r.sink.raised, irqs + 1, "one interrupt for the batch");
    assert.equal(r.device.stats.rxPackets, 2);
    assert.equal(r.device.stats.rxBytes, 2600);
    assert.equal(r.device.stats.rxDropped, 0);
  } finally {
    r.close();
  }
});

Deno.test("socket tap TX: a split header and frame leave as one frame, offloads checked", () => {
  const r = socketNetRig((o) => new VirtioNet(o), [64, 64]);
  try {
    assert.ok(r.drv.init(FEATURES));
    const q = r.drv.queues[NET_TX_QUEUE];
    const hdr = header(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 34, 16);
    const frame = pattern(1400, 3);
    const a = TX_AREA;
    // flags alone in the first descriptor, gso_type in the second.
    r.mem.write(a, hdr.subarray(0, 1));
    r.mem.write(a + 0x100, hdr.subarray(1));
    r.mem.write(a + 0x200, frame.subarray(0, 600));
    r.mem.write(a + 0x1000, frame.subarray(600));
    q.add([
      { addr: a, len: 1 },
      { addr: a + 0x100, len: 11 },
      { addr: a + 0x200, len: 600 },
      { addr: a + 0x1000, len: 800 },
    ]);
    r.drv.kick(NET_TX_QUEUE);
    const sent = peerRecv(r);
    assert.ok(sent, "a frame reached the tap");
    assert.deepEqual(sent, concat(hdr, frame));
    assert.equal(peerRecv(r), null, "exactly one frame");
    assert.deepEqual(q.collect().map((u) => u.len), [0]);
    assert.equal(r.device.stats.txPackets, 1);
    assert.equal(r.device.stats.txBytes, 1400);

    // TSO4 was not negotiated: a gso_type in the header's second descriptor
    // is still read, and the device is marked broken with it named.
    r.mem.write(a, Uint8Array.of(0));
    r.mem.write(a + 0x100, header(0, VIRTIO_NET_HDR_GSO_TCPV4).subarray(1));
    q.add([{ addr: a, len: 1 }, { addr: a + 0x100, len: 11 }, { addr: a + 0x200, len: 60 }]);
    r.drv.kick(NET_TX_QUEUE);
    assert.equal(peerRecv(r), null);
    assert.ok(r.drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET);
    assert.match(r.logs.join("\n"), /offload the driver did not negotiate.*gso_type 1/);
  } finally {
    r.close();
  }
});

Deno.test("the data path allocates next to nothing per frame (was ~250 bytes)", async () => {
  // bench/net_path_bench.ts measures JS heap growth per frame with a young
  // generation large enough that no scavenge hides it, in a fresh process.
  const bench = new URL("../../bench/net_path_bench.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--v8-flags=${HEAP_MEASURE_V8_FLAGS}`,
      bench,
      "--only=current",
      "--packets=20000",
    ],
    stderr: "inherit",
  }).output();
  assert.ok(out.success);
  const row = JSON.parse(new TextDecoder().decode(out.stdout)) as Record<string, number>;
  // Per-packet views, BigInts and isize results cost 250-300 bytes per frame;
  // what is left once the JIT has optimised the path (0-2 here) is noise.
  assert.ok(row.rxHeapPerPacket < 16, `RX: ${row.rxHeapPerPacket} heap bytes per frame`);
  assert.ok(row.txHeapPerPacket < 16, `TX: ${row.txHeapPerPacket} heap bytes per frame`);
});

Deno.test("socket tap RX: a frame short of buffers holds its first chain, then completes", () => {
  const r = socketNetRig((o) => new VirtioNet(o), [64, 64]);
  try {
    assert.ok(r.drv.init(FEATURES));
    const q = r.drv.queues[NET_RX_QUEUE];
    const chains = new Map<number, Segment[]>();
    const post = (i: number) => {
      const segs = [{ addr: RX_AREA + i * 0x1000, len: 1000, write: true }];
      chains.set(q.add(segs), segs);
    };
    post(0);
    r.drv.kick(NET_RX_QUEUE);
    const big = concat(header(0, 0), pattern(2500, 5));
    peerSend(r, big);
    r.loop.readable(r.tap.fd);
    assert.deepEqual(q.collect(), [], "nothing published while the frame lacks buffers");
    assert.equal(r.device.stats.rxStalls, 1);
    assert.equal(r.loop.handlers.get(r.tap.fd), undefined, "the tap is not read meanwhile");
    post(1);
    post(2);
    r.drv.kick(NET_RX_QUEUE);
    const used = q.collect();
    assert.deepEqual(used.map((u) => u.len), [1000, 1000, big.length - 2000]);
    const joined = concat(...used.map((u) => gather(r, chains.get(u.id)!, u.len)));
    assert.equal(joined[10] | (joined[11] << 8), 3);
    assert.deepEqual(joined.subarray(12), big.subarray(12));
    assert.equal(r.device.stats.rxPackets, 1);
    assert.equal(r.device.stats.rxDropped, 0);
  } finally {
    r.close();
  }
});

Deno.test("socket tap RX: without MRG_RXBUF an oversized frame is dropped and counted", () => {
  const r = socketNetRig((o) => new VirtioNet(o), [64, 64]);
  try {
    assert.ok(r.drv.init(featureBit(VIRTIO_NET_F_CSUM)));
    const q = r.drv.queues[NET_RX_QUEUE];
    q.add([{ addr: RX_AREA, len: 1000, write: true }]);
    r.drv.kick(NET_RX_QUEUE);
    peerSend(r, concat(header(0, 0), pattern(2500, 6)));
    const small = concat(header(0, 0), pattern(200, 7));
    peerSend(r, small);
    r.loop.readable(r.tap.fd);
    const used = q.collect();
    assert.equal(used.length, 1, "the buffer went back and took the next frame");
    assert.equal(used[0].len, small.length);
    assert.deepEqual(r.mem.slice(RX_AREA + 12, 200), small.subarray(12));
    assert.equal(r.device.stats.rxDropped, 1);
    assert.equal(r.device.stats.rxPackets, 1);
  } finally {
    r.close();
  }
});

Deno.test("socket tap RX: a chain taken while the tap was empty takes the next frame, TX in between", () => {
  const r = socketNetRig((o) => new VirtioNet(o), [64, 64]);
  try {
    assert.ok(r.drv.init(FEATURES));
    const rxq = r.drv.queues[NET_RX_QUEUE];
    const segs = [
      { addr: RX_AREA, len: 40, write: true },
      { addr: RX_AREA + 0x800, len: 1500, write: true },
    ];
    r.mem.fill(RX_AREA, 0x1000, 0xcc);
    const head = rxq.add(segs);
    r.drv.kick(NET_RX_QUEUE);
    // The tap is empty: the device takes the chain ahead and keeps it.
    r.loop.readable(r.tap.fd);
    assert.deepEqual(rxq.collect(), []);
    assert.equal(r.device.stats.rxStalls, 0, "a held chain is not a stall");
    // A transmit in between builds its own iovecs.
    const txq = r.drv.queues[NET_TX_QUEUE];
    const out = concat(header(0, 0), pattern(300, 8));
    r.mem.write(TX_AREA, out);
    txq.add([{ addr: TX_AREA, len: out.length }]);
    r.drv.kick(NET_TX_QUEUE);
    assert.deepEqual(peerRecv(r), out);
    // The next frame lands in the held chain, not in the TX buffer.
    const frame = concat(header(0, 0), pattern(700, 9));
    peerSend(r, frame);
    r.loop.readable(r.tap.fd);
    const used = rxq.collect();
    assert.deepEqual(used.map((u) => [u.id, u.len]), [[head, frame.length]]);
    const got = gather(r, segs, frame.length);
    assert.deepEqual(got.subarray(12), frame.subarray(12));
    assert.equal(got[10] | (got[11] << 8), 1);
    assert.deepEqual(r.mem.slice(TX_AREA, out.length), out, "the TX buffer is untouched");

    // A chain held when the driver resets is forgotten: after re-init the
    // next frame goes to the new ring's chain only.
    r.loop.readable(r.tap.fd); // empty: takes the next chain ahead
    rxq.add([{ addr: RX_AREA + 0x2000, len: 2048, write: true }]);
    r.loop.readable(r.tap.fd);
    assert.ok(r.drv.init(FEATURES));
    r.mem.fill(RX_AREA + 0x2000, 2048, 0xcc);
    rxq.add([{ addr: RX_AREA + 0x4000, len: 2048, write: true }]);
    r.drv.kick(NET_RX_QUEUE);
    const again = concat(header(0, 0), pattern(500, 10));
    peerSend(r, again);
    r.loop.readable(r.tap.fd);
    assert.deepEqual(rxq.collect().map((u) => u.len), [again.length]);
    assert.deepEqual(r.mem.slice(RX_AREA + 0x4000 + 12, 500), again.subarray(12));
    assert.ok(r.mem.slice(RX_AREA + 0x2000, 2048).every((b) => b === 0xcc), "old chain untouched");
  } finally {
    r.close();
  }
});
