// virtio-net through a real tap in a network namespace (needs root or
// CAP_NET_ADMIN, iproute2 and python3, which it installs).
import assert from "node:assert/strict";
import { TUN_ABI, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 } from "../../sys/tun.ts";
import { featureBit, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1 } from "./constants.ts";
import {
  NET_ABI,
  VIRTIO_NET_CFG_MAC,
  VIRTIO_NET_CFG_STATUS,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_SIZE,
} from "./net_constants.ts";
import { NET_RX_QUEUE, NET_TX_QUEUE } from "./net.ts";
import {
  GUEST_IP,
  HOST_IP,
  icmpEchoFrame,
  inetChecksum,
  type NetRig,
  netTest,
  sendUdpFromHost,
  sleep,
  udpPattern,
  until,
  withNetRig,
} from "./_net_test_rig.ts";

const RX_AREA = 0x40_0000;
const RX_SLOT = 0x1_0000;
const TX_AREA = 0xc0_0000;
const BASIC = featureBit(VIRTIO_NET_F_MAC) | featureBit(VIRTIO_NET_F_STATUS);
const ALL = 0xffff_ffff_ffffn;

async function probe(): Promise<Map<string, number>> {
  const names = [...Object.keys(TUN_ABI), ...Object.keys(NET_ABI), "sizeof(struct ifreq)"];
  const src = [
    "#include <stdio.h>",
    "#include <stddef.h>",
    "#include <sys/ioctl.h>",
    "#include <net/if.h>",
    "#include <linux/if_tun.h>",
    "#include <linux/virtio_net.h>",
    "#include <linux/virtio_ids.h>",
    "int main(void) {",
    'printf("offsetof(ifr_flags) %zu\\n", offsetof(struct ifreq, ifr_flags));',
    ...names.map((n) => `printf("${n} %lu\\n", (unsigned long)(${n}));`),
    "return 0; }",
  ].join("\n");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/p.c`, src);
    const cc = await new Deno.Command("cc", { args: ["-o", `${dir}/p`, `${dir}/p.c`] }).output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const out = new TextDecoder().decode((await new Deno.Command(`${dir}/p`).output()).stdout);
    const m = new Map<string, number>();
    for (const line of out.trim().split("\n")) {
      const i = line.lastIndexOf(" ");
      m.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return m;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("tun ioctls, ifreq and virtio-net layouts match the C headers", async () => {
  const c = await probe();
  const wrong: string[] = [];
  for (const [k, v] of [...Object.entries(TUN_ABI), ...Object.entries(NET_ABI)]) {
    if (c.get(k) !== v) wrong.push(`${k}: ours ${v}, C ${c.get(k)}`);
  }
  const { IFREQ_SIZE, IFREQ_FLAGS } = await import("../../sys/tun.ts");
  if (c.get("sizeof(struct ifreq)") !== IFREQ_SIZE) wrong.push("sizeof(struct ifreq)");
  if (c.get("offsetof(ifr_flags)") !== IFREQ_FLAGS) wrong.push("offsetof(ifr_flags)");
  assert.deepEqual(wrong, []);
});

/** Offers `n` RX buffers of `size` bytes, each at a per-head address. */
function postRx(r: NetRig, n: number, size: number): void {
  const q = r.drv.queues[NET_RX_QUEUE];
  for (let i = 0; i < n; i++) {
    // The head is not known before add: reserve a slot per possible head.
    const probeHead = q.add([{ addr: 0, len: 0, write: true }]);
    assert.ok(probeHead >= 0);
    // Rewrite the just-added descriptor with its real buffer.
    const d = q.desc + 16 * probeHead;
    r.mem.writeU64(d, BigInt(RX_AREA + probeHead * RX_SLOT));
    r.mem.writeU32(d + 8, size);
  }
  r.drv.kick(NET_RX_QUEUE);
}

interface RxFrame {
  flags: number;
  gsoType: number;
  csumStart: number;
  csumOffset: number;
  numBuffers: number;
  frame: Uint8Array;
}

/** Reassembles every completed RX frame (mergeable or not). */
function collectRx(r: NetRig, pending: { id: number; len: number }[]): RxFrame[] {
  pending.push(...r.drv.queues[NET_RX_QUEUE].collect());
  const out: RxFrame[] = [];
  while (pending.length > 0) {
    const first = pending[0];
    const base = RX_AREA + first.id * RX_SLOT;
    const numBuffers = r.mem.readU16(base + 10);
    if (pending.length < numBuffers) break;
    const parts = pending.splice(0, numBuffers);
    const bytes: number[] = [];
    for (const p of parts) bytes.push(...r.mem.slice(RX_AREA + p.id * RX_SLOT, p.len));
    out.push({
      flags: r.mem.readU8(base),
      gsoType: r.mem.readU8(base + 1),
      csumStart: r.mem.readU16(base + 6),
      csumOffset: r.mem.readU16(base + 8),
      numBuffers,
      frame: Uint8Array.from(bytes.slice(VIRTIO_NET_HDR_SIZE)),
    });
  }
  return out;
}

/** UDP datagrams to port 9 among frames: [payload, frame]. */
function udpTo9(frames: RxFrame[]): { payload: Uint8Array; f: RxFrame }[] {
  return frames.filter((f) =>
    f.frame[12] === 0x08 && f.frame[13] === 0 && f.frame[23] === 17 &&
    f.frame[36] === 0 && f.frame[37] === 9
  ).map((f) => ({ payload: f.frame.subarray(42), f }));
}

/** Sends one TX chain: header (12 bytes) then frame, split in two descriptors. */
function sendTx(r: NetRig, hdr: Uint8Array, frame: Uint8Array, slot = 0): void {
  const a = TX_AREA + slot * RX_SLOT;
  r.mem.write(a, hdr);
  r.mem.write(a + 0x100, frame);
  const q = r.drv.queues[NET_TX_QUEUE];
  assert.ok(q.add([{ addr: a, len: hdr.length }, { addr: a + 0x100, len: frame.length }]) >= 0);
  r.drv.kick(NET_TX_QUEUE);
}

netTest(
  "config space: MAC, link status, and a config interrupt when the link changes",
  async () => {
    await withNetRig((r) => {
      assert.ok(r.drv.init(BASIC));
      const mac = Array.from({ length: 6 }, (_, i) => r.drv.config(VIRTIO_NET_CFG_MAC + i, 1));
      assert.deepEqual(mac, [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
      assert.equal(r.drv.config(VIRTIO_NET_CFG_STATUS, 2), 1);
      const before = r.sink.raised;
      r.net.setLink(false);
      assert.equal(r.drv.config(VIRTIO_NET_CFG_STATUS, 2), 0);
      assert.equal(r.sink.raised, before + 1);
      r.net.setLink(true);
      assert.equal(r.drv.config(VIRTIO_NET_CFG_STATUS, 2), 1);
    });
  },
);

netTest("a ping sent on TX reaches the host kernel and its reply arrives on RX", async () => {
  await withNetRig(async (r) => {
    assert.ok(r.drv.init(ALL));
    postRx(r, 16, 4096);
    const payload = new TextEncoder().encode("denovmm virtio-net ping payload 0123456789");
    sendTx(r, new Uint8Array(12), icmpEchoFrame(r.hostMac, 7, payload));
    const pending: { id: number; len: number }[] = [];
    let reply: RxFrame | undefined;
    await until(() => {
      reply ??= collectRx(r, pending).find((f) => f.frame[23] === 1 && f.frame[34] === 0);
      return reply !== undefined;
    });
    assert.deepEqual([...reply!.frame.subarray(26, 30)], HOST_IP);
    assert.deepEqual([...reply!.frame.subarray(30, 34)], GUEST_IP);
    assert.deepEqual(reply!.frame.subarray(42), payload);
    assert.equal(r.drv.queues[NET_TX_QUEUE].collect().length, 1);
    assert.equal(r.net.stats.txPackets, 1);
    assert.ok(r.net.stats.rxPackets >= 1);
  });
});

netTest(
  "mergeable RX: a 8000-byte datagram spans buffers that are published together",
  async () => {
    await withNetRig(async (r) => {
      assert.ok(r.drv.init(BASIC | featureBit(VIRTIO_NET_F_MRG_RXBUF)));
      postRx(r, 32, 1536);
      await sendUdpFromHost(r, [8000]);
      const pending: { id: number; len: number }[] = [];
      const got: ReturnType<typeof udpTo9> = [];
      await until(() => (got.push(...udpTo9(collectRx(r, pending))), got.length === 1));
      assert.ok(got[0].f.numBuffers >= 6, `num_buffers ${got[0].f.numBuffers}`);
      assert.deepEqual(got[0].payload, udpPattern(8000));
    });
  },
);

netTest(
  "without MRG_RXBUF a frame larger than the buffer is dropped, counted, buffer kept",
  async () => {
    await withNetRig(async (r) => {
      assert.ok(r.drv.init(BASIC));
      postRx(r, 4, 1536);
      await sendUdpFromHost(r, [8000, 100]);
      const pending: { id: number; len: number }[] = [];
      const got: ReturnType<typeof udpTo9> = [];
      await until(() => (got.push(...udpTo9(collectRx(r, pending))), got.length === 1));
      assert.deepEqual(got[0].payload, udpPattern(100));
      assert.equal(r.net.stats.rxDropped, 1);
      assert.equal(got[0].f.numBuffers, 1);
    });
  },
);

netTest("offloads follow the driver: partial checksums only with GUEST_CSUM", async () => {
  await withNetRig(async (r) => {
    // With GUEST_CSUM (+TSO): the tap hands over partial checksums.
    const offload = BASIC | featureBit(VIRTIO_NET_F_GUEST_CSUM) |
      featureBit(VIRTIO_NET_F_GUEST_TSO4) | featureBit(VIRTIO_NET_F_GUEST_TSO6) |
      featureBit(VIRTIO_NET_F_MRG_RXBUF);
    assert.ok(r.drv.init(offload));
    assert.equal(r.net.tapOffloads, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
    postRx(r, 8, 4096);
    await sendUdpFromHost(r, [300]);
    let pending: { id: number; len: number }[] = [];
    let got: ReturnType<typeof udpTo9> = [];
    await until(() => (got.push(...udpTo9(collectRx(r, pending))), got.length === 1));
    assert.equal(got[0].f.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    assert.equal(got[0].f.csumStart, 34);
    assert.equal(got[0].f.csumOffset, 6);
    // Without: flags are 0 and the UDP checksum is complete.
    assert.ok(r.drv.init(BASIC));
    assert.equal(r.net.tapOffloads, 0);
    postRx(r, 8, 4096);
    await sendUdpFromHost(r, [301]);
    pending = [];
    got = [];
    await until(() => (got.push(...udpTo9(collectRx(r, pending))), got.length === 1));
    assert.equal(got[0].f.flags, 0);
    const udp = got[0].f.frame.subarray(34);
    const pseudo = new Uint8Array(12);
    pseudo.set(got[0].f.frame.subarray(26, 34));
    pseudo[9] = 17;
    new DataView(pseudo.buffer).setUint16(10, udp.length);
    assert.equal(inetChecksum(udp, inetChecksum(pseudo)), 0xffff);
  });
});

netTest("a full RX ring stops reading the tap until the driver adds buffers", async () => {
  await withNetRig(async (r) => {
    assert.ok(r.drv.init(BASIC));
    postRx(r, 8, 2048);
    await sendUdpFromHost(r, Array.from({ length: 20 }, (_, i) => 100 + i));
    const pending: { id: number; len: number }[] = [];
    const got: ReturnType<typeof udpTo9> = [];
    const poll = () => (got.push(...udpTo9(collectRx(r, pending))), got.length);
    await until(() => poll() === 8);
    await sleep(100);
    assert.equal(poll(), 8);
    assert.ok(r.net.stats.rxStalls >= 1);
    postRx(r, 8, 2048);
    await until(() => poll() === 16);
    postRx(r, 8, 2048);
    await until(() => poll() === 20);
    assert.deepEqual(
      got.map((g) => g.payload.length),
      Array.from({ length: 20 }, (_, i) => 100 + i),
    );
    assert.equal(r.net.stats.rxDropped, 0);
  }, { rxSize: 8 });
});

netTest("malformed TX chains mark the device broken with the violation named", async () => {
  await withNetRig(async (r) => {
    const frame = icmpEchoFrame(r.hostMac, 1, new Uint8Array(8));
    const cases: [string, bigint, () => void][] = [
      [
        "shorter than the virtio-net header",
        BASIC,
        () => sendTx(r, new Uint8Array(4), new Uint8Array(0)),
      ],
      ["did not negotiate", BASIC, () => {
        const h = new Uint8Array(12);
        h[1] = VIRTIO_NET_HDR_GSO_TCPV4;
        sendTx(r, h, frame);
      }],
      ["did not negotiate", BASIC, () => {
        const h = new Uint8Array(12);
        h[1] = 0x42;
        sendTx(r, h, frame);
      }],
      ["device-writable", BASIC, () => {
        const q = r.drv.queues[NET_TX_QUEUE];
        q.add([{ addr: TX_AREA, len: 12 }, { addr: TX_AREA + 0x100, len: 64, write: true }]);
        r.drv.kick(NET_TX_QUEUE);
      }],
    ];
    for (const [why, accept, send] of cases) {
      r.logs.length = 0;
      assert.ok(r.drv.init(accept));
      send();
      await until(() => (r.drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0);
      assert.equal(r.logs.length, 1);
      assert.match(r.logs[0], new RegExp(why));
    }
    // Negotiated TSO4 makes the same header legal (the kernel takes it or counts a drop).
    assert.ok(
      r.drv.init(BASIC | featureBit(VIRTIO_NET_F_HOST_TSO4) | featureBit(VIRTIO_NET_F_CSUM)),
    );
    const h = new Uint8Array(12);
    h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    new DataView(h.buffer).setUint16(6, 5000, true); // csum_start past the frame: EINVAL
    new DataView(h.buffer).setUint16(8, 6, true);
    sendTx(r, h, frame);
    await until(() => r.drv.queues[NET_TX_QUEUE].collect().length === 1);
    assert.equal(r.net.stats.txDropped, 1);
    assert.equal(r.drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
  });
});

netTest("an RX buffer smaller than the virtio-net header marks the device broken", async () => {
  await withNetRig(async (r) => {
    assert.ok(r.drv.init(BASIC));
    postRx(r, 1, 8);
    await sendUdpFromHost(r, [10]);
    await until(() => (r.drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0);
    assert.match(r.logs[0], /RX buffer smaller than the virtio-net header/);
  });
});

netTest("VERSION_1 is required and offered with the net features", async () => {
  await withNetRig((r) => {
    const offered = r.drv.deviceFeatures();
    for (const bit of [VIRTIO_F_VERSION_1, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_CSUM]) {
      assert.ok(offered & featureBit(bit), `feature ${bit} offered`);
    }
  });
});

netTest(
  "an echo reply the host queued during the TX kick is delivered in the same turn",
  async () => {
    await withNetRig((r) => {
      assert.ok(r.drv.init(ALL));
      postRx(r, 16, 4096);
      const payload = new TextEncoder().encode("same-turn");
      // No await between the kick and the check: the loop gets no turn.
      sendTx(r, new Uint8Array(12), icmpEchoFrame(r.hostMac, 9, payload));
      const reply = collectRx(r, []).find((f) => f.frame[23] === 1 && f.frame[34] === 0);
      assert.ok(reply, "the reply was read right after the frame was written");
      assert.deepEqual(reply.frame.subarray(42), payload);
    });
  },
);
