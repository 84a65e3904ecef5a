/**
 * One ping through the TypeScript virtio-net data path, timed on the host
 * alone (no KVM): the "guest" offers an ICMP echo request on TX and kicks
 * the queue's eventfd (what KVM's ioeventfd does); the device's kick
 * handler reads the eventfd, writes the frame to a real tap, the host
 * kernel answers on the tap, the device reads the reply into an RX chain
 * and writes the irqfd. Timed from the kick handler's start to the irqfd
 * write, against the same syscalls made straight from JS (read eventfd,
 * writev tap, readv tap, write irqfd: the floor any userspace data path
 * pays), each timed per hop.
 *
 * Times are this thread's CPU time (the host is shared). Two figures per path: **cold**, pings 3 to 22 of a fresh process (what
 * bench/net_bench.ts's 20 pings after 2 see: the code has barely run),
 * and **warm**, after thousands. Each path runs in fresh processes,
 * alternating; medians.
 *
 * Needs root (creates a tap `dvmlatN` with 10.78.0.1/24). Runs as well
 * inside the nested host (`tests/nested/run.ts -- deno run -A
 * bench/net_latency_bench.ts`), where the L1 is emulated as the VMM is
 * in net_bench's nested runs.
 *
 * `--tcg` runs the measured processes under QEMU's user-mode emulator
 * (`qemu-x86_64`, TCG, installed from Debian if missing): the same kind of
 * translated execution the nested host gives the VMM, without a nested
 * host, so what the JavaScript costs there shows here in minutes.
 *
 * ```sh
 * deno run -A bench/net_latency_bench.ts [--rounds=3] [--warm=3000] [--base=DIR] [--tcg] [--json]
 * ```
 *
 * @module
 */
import { readvI32, writeI32, writevI32 } from "../sys/libc.ts";
import { closeFd, eventFd, eventFdDrain, eventFdWrite } from "../sys/fd.ts";
import { openTap, type Tap } from "../sys/tun.ts";
import { IOV_BYTES, setIovec } from "../devices/virtio/net_ram_map.ts";
import { featureBit, VRING_DESC_F_WRITE } from "../devices/virtio/constants.ts";
import {
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_SIZE,
} from "../devices/virtio/net_constants.ts";
import { VIRTIO_RING_F_EVENT_IDX } from "../devices/virtio/constants.ts";
import type * as NetModule from "../devices/virtio/net.ts";
import type * as FakeTapModule from "../devices/virtio/_net_fake_tap.ts";
import type * as DriverModule from "../devices/virtio/_test_driver.ts";
import type * as MemoryModule from "../memory/guest_memory.ts";
import {
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
} from "../devices/pci/constants.ts";
import { VIRTIO_PCI_MSIX_TABLE_OFFSET } from "../devices/virtio/pci_layout.ts";
import { ensureHostModules } from "../tests/kvm/_net_host.ts";
import { ensureAptPackages } from "../tests/fixtures/debian.ts";

function arg(name: string, fallback: string): string {
  const a = Deno.args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
}

const ONLY = arg("only", "");
/**
 * Another tree (e.g. `git archive main | tar -x -C .cache/base`) whose
 * device code is measured as "base" beside this tree's, in the same run.
 */
const BASE = arg("base", "");
const ROOT = arg("root", new URL("..", import.meta.url).pathname);
const WARM = Number(arg("warm", "3000"));
const ROUNDS = Number(arg("rounds", "3"));
/** V8 flags for the measured processes (to see what JIT tiers change). */
const V8 = arg("v8-flags", "");
const TCG = Deno.args.includes("--tcg");
const COLD_FIRST = 2; // net_bench's warm-up pings
const COLD_COUNT = 20;
const WARM_TIMED = 1000;
const MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const HOST_IP = [10, 78, 0, 1];
const GUEST_IP = [10, 78, 0, 2];
const RX_AREA = 0x40_0000;
const TX_AREA = 0x80_0000;
const SLOT = 2048;
const SIZE = 256;
const FEATURES = featureBit(VIRTIO_NET_F_MAC) | featureBit(VIRTIO_NET_F_STATUS) |
  featureBit(VIRTIO_NET_F_MRG_RXBUF) | featureBit(VIRTIO_NET_F_CSUM) |
  featureBit(VIRTIO_NET_F_GUEST_CSUM) | featureBit(VIRTIO_RING_F_EVENT_IDX);

async function sh(cmd: string[]): Promise<string> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1) }).output();
  if (!out.success) {
    throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

function checksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (b.length & 1) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** virtio_net_hdr_v1 (zeros) + an ARP request or an ICMP echo request from the guest. */
function frames(hostMac: Uint8Array): { arp: Uint8Array; ping: Uint8Array } {
  const arp = new Uint8Array(VIRTIO_NET_HDR_SIZE + 42);
  const a = arp.subarray(VIRTIO_NET_HDR_SIZE);
  a.fill(0xff, 0, 6);
  a.set(MAC, 6);
  a.set([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1], 12);
  a.set(MAC, 22);
  a.set(GUEST_IP, 28);
  a.set(HOST_IP, 38);
  // 56 bytes of data, as ping sends: 98-byte frames.
  const ping = new Uint8Array(VIRTIO_NET_HDR_SIZE + 98);
  const f = ping.subarray(VIRTIO_NET_HDR_SIZE);
  const v = new DataView(f.buffer, f.byteOffset);
  f.set(hostMac, 0);
  f.set(MAC, 6);
  v.setUint16(12, 0x0800);
  f.set([0x45, 0, 0, 84, 0, 1, 0x40, 0, 64, 1, 0, 0], 14);
  f.set(GUEST_IP, 26);
  f.set(HOST_IP, 30);
  v.setUint16(24, checksum(f.subarray(14, 34)));
  f.set([8, 0, 0, 0, 0x42, 0x42, 0, 1], 34);
  for (let i = 42; i < 98; i++) f[i] = i;
  v.setUint16(36, checksum(f.subarray(34)));
  return { arp, ping };
}

interface Rig {
  tap: Tap;
  name: string;
  hostMac: Uint8Array;
  close(): void;
}

async function tapRig(): Promise<Rig> {
  await ensureHostModules();
  const name = `dvmlat${Deno.pid % 100000}`;
  const tap = openTap(name);
  try {
    await sh(["ip", "addr", "add", `${HOST_IP.join(".")}/24`, "dev", name]);
    await sh(["ip", "link", "set", name, "up"]);
    const mac = (await Deno.readTextFile(`/sys/class/net/${name}/address`)).trim();
    const hostMac = Uint8Array.from(mac.split(":").map((h) => parseInt(h, 16)));
    return { tap, name, hostMac, close: () => tap.close() };
  } catch (e) {
    tap.close();
    throw e;
  }
}

/** Per-ping times (µs): the cold ones and the warm ones. */
interface Times {
  cold: number[];
  warm: number[];
  /** Per hop, warm medians (syscalls path only). */
  hops?: Record<string, number>;
  hopsCold?: Record<string, number>;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)];
}

/** The ping through the device model (kick handler to irqfd). */
async function deviceRun(): Promise<Times> {
  // The device code comes from ROOT (this tree, or a base tree to compare).
  const { VirtioNet } = await import(`${ROOT}/devices/virtio/net.ts`) as typeof NetModule;
  const { ManualLoop } = await import(
    `${ROOT}/devices/virtio/_net_fake_tap.ts`
  ) as typeof FakeTapModule;
  const { TestDriver, wireDevice } = await import(
    `${ROOT}/devices/virtio/_test_driver.ts`
  ) as typeof DriverModule;
  const { GuestMemory } = await import(`${ROOT}/memory/guest_memory.ts`) as typeof MemoryModule;
  const rig = await tapRig();
  const mem = GuestMemory.allocate(32 << 20);
  const loop = new ManualLoop();
  const irqfd = eventFd();
  const kicks = [eventFd(), eventFd()];
  const net = new VirtioNet({ tap: rig.tap, loop, mac: MAC });
  const sink = {
    msix(_v: number) {
      eventFdWrite(irqfd);
    },
    intx(level: boolean) {
      if (level) eventFdWrite(irqfd);
    },
  };
  const { dev, backend } = wireDevice(net, mem, {
    interrupt: sink,
    log: (m: string) => console.error(m),
  });
  try {
    dev.configWrite(PCI_COMMAND, new Uint8Array([PCI_COMMAND_MEMORY, 0]));
    dev.configWrite(
      dev.msix.capOffset + PCI_MSIX_FLAGS,
      new Uint8Array([0, PCI_MSIX_FLAGS_ENABLE >> 8]),
    );
    const drv = new TestDriver(mem, dev, { sizes: [SIZE, SIZE] });
    for (let v = 0; v < 3; v++) {
      drv.write(VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v, 4, 0xfee0_0000);
      drv.write(VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v + 8, 4, 0x4040 + v);
      drv.write(VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v + 12, 4, 0);
    }
    if (!drv.init(FEATURES, { vectors: [1, 2] })) throw new Error("features refused");
    backend.attach(loop, kicks);
    const rxq = drv.queues[0], txq = drv.queues[1];
    for (let i = 0; i < SIZE; i++) {
      const d = rxq.desc + 16 * i;
      mem.writeU32(d, RX_AREA + i * SLOT);
      mem.writeU32(d + 4, 0);
      mem.writeU32(d + 8, SLOT);
      mem.writeU16(d + 12, VRING_DESC_F_WRITE);
      mem.writeU16(d + 14, 0);
      mem.writeU16(rxq.avail + 4 + 2 * i, i);
    }
    mem.writeU16(rxq.avail + 2, SIZE);
    let rxAvail = SIZE, rxLast = 0, txAvail = 0, txLast = 0;
    const { arp, ping } = frames(rig.hostMac);
    // One TX descriptor per frame kind, reused.
    const txDesc = (i: number, f: Uint8Array) => {
      mem.write(TX_AREA + i * SLOT, f);
      const d = txq.desc + 16 * i;
      mem.writeU32(d, TX_AREA + i * SLOT);
      mem.writeU32(d + 4, 0);
      mem.writeU32(d + 8, f.length);
      mem.writeU16(d + 12, 0);
      mem.writeU16(d + 14, 0);
    };
    txDesc(0, arp);
    txDesc(1, ping);
    const pfd = new Int32Array(2);
    /** One round: offer TX head, kick, (timed) dispatch until the reply is in; returns µs. */
    const once = (head: number): number => {
      mem.writeU16(txq.avail + 4 + 2 * (txAvail & (SIZE - 1)), head);
      txAvail = (txAvail + 1) & 0xffff;
      mem.writeU16(txq.avail + 2, txAvail);
      // used_event: interrupt for the next RX entry (what Linux's NAPI sets on completion).
      mem.writeU16(rxq.avail + 4 + 2 * SIZE, rxLast);
      eventFdWrite(kicks[1]);
      const t0 = cpuMs();
      loop.readable(kicks[1]);
      let ok = replied();
      while (!ok) {
        pfd[0] = rig.tap.fd;
        pfd[1] = 1; // POLLIN
        waitReadable(rig.tap.fd);
        loop.readable(rig.tap.fd);
        ok = replied();
      }
      const us = (cpuMs() - t0) * 1000;
      if (!eventFdDrain(irqfd)) throw new Error("no interrupt for the reply");
      txLast = mem.readU16(txq.used + 2);
      return us;
    };
    /** Consumes RX used entries (re-offering them); true once an IPv4 frame came. */
    const replied = (): boolean => {
      const idx = mem.readU16(rxq.used + 2);
      let ipv4 = false;
      while (rxLast !== idx) {
        const e = rxq.used + 4 + 8 * (rxLast & (SIZE - 1));
        const head = mem.readU32(e);
        if (mem.readU16(RX_AREA + head * SLOT + VIRTIO_NET_HDR_SIZE + 12) === 0x0008) ipv4 = true;
        mem.writeU16(rxq.avail + 4 + 2 * (rxAvail & (SIZE - 1)), head);
        rxAvail = (rxAvail + 1) & 0xffff;
        rxLast = (rxLast + 1) & 0xffff;
      }
      mem.writeU16(rxq.avail + 2, rxAvail);
      return ipv4;
    };
    // The ARP request makes the host learn the guest's MAC; its reply is not IPv4.
    mem.writeU16(txq.avail + 4, 0);
    mem.writeU16(txq.avail + 2, ++txAvail);
    eventFdWrite(kicks[1]);
    loop.readable(kicks[1]);
    await new Promise((r) => setTimeout(r, 50));
    if (loop.handlers.has(rig.tap.fd)) loop.readable(rig.tap.fd);
    replied();
    eventFdDrain(irqfd);
    const cold: number[] = [];
    for (let i = 0; i < COLD_FIRST + COLD_COUNT; i++) {
      const us = once(1);
      if (i >= COLD_FIRST) cold.push(us);
    }
    for (let i = 0; i < WARM; i++) once(1);
    const warm: number[] = [];
    for (let i = 0; i < WARM_TIMED; i++) warm.push(once(1));
    void txLast;
    return { cold, warm };
  } finally {
    net.reset(() => {});
    for (const fd of [irqfd, ...kicks]) closeFd(fd);
    mem.close();
    rig.close();
  }
}

const pollLib = Deno.dlopen("libc.so.6", {
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
});
const CLOCK_THREAD_CPUTIME_ID = 3;
const tsBuf = new Int32Array(4);
const tsBytes = new Uint8Array(tsBuf.buffer);
/**
 * This thread's CPU time in ms: what the path costs, not how long the
 * scheduler kept it off a core (the host is shared; wall time swings).
 */
function cpuMs(): number {
  pollLib.symbols.clock_gettime(CLOCK_THREAD_CPUTIME_ID, tsBytes);
  return tsBuf[0] * 1000 + tsBuf[2] / 1e6;
}
const pollBuf = new Int32Array(2);
function waitReadable(fd: number): void {
  pollBuf[0] = fd;
  pollBuf[1] = 1;
  pollLib.symbols.poll(new Uint8Array(pollBuf.buffer), 1n, 1000);
}

/** The same syscalls from plain JS: read kick, writev frame, readv reply, write irqfd. */
async function syscallRun(): Promise<Times> {
  const rig = await tapRig();
  const kick = eventFd(), irqfd = eventFd();
  const { arp, ping } = frames(rig.hostMac);
  const addr = (b: Uint8Array) => Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
  const rx = new Uint8Array(SLOT);
  const txIov = new Uint8Array(IOV_BYTES), rxIov = new Uint8Array(IOV_BYTES);
  const tv = new DataView(txIov.buffer);
  setIovec(new DataView(rxIov.buffer), 0, addr(rx), rx.length);
  const kickBuf = new Uint8Array(8), irqBuf = new Uint8Array(8);
  irqBuf[0] = 1;
  const fd = rig.tap.fd;
  const hopNames = ["read kick", "writev tap", "readv tap", "write irqfd"];
  const hopT = new Float64Array(4);
  try {
    setIovec(tv, 0, addr(arp), arp.length);
    writevI32(fd, txIov, 1);
    await new Promise((r) => setTimeout(r, 50));
    while (readvI32(fd, rxIov, 1) > 0) { /* drain the ARP reply */ }
    setIovec(tv, 0, addr(ping), ping.length);
    const once = (): number => {
      eventFdWrite(kick);
      const t0 = cpuMs();
      readI32(kick, kickBuf);
      const t1 = cpuMs();
      writevI32(fd, txIov, 1);
      const t2 = cpuMs();
      let n = readvI32(fd, rxIov, 1);
      while (n < 0 || rx[VIRTIO_NET_HDR_SIZE + 12] !== 0x08 || rx[VIRTIO_NET_HDR_SIZE + 13] !== 0) {
        if (n < 0) waitReadable(fd);
        n = readvI32(fd, rxIov, 1);
      }
      const t3 = cpuMs();
      writeI32(irqfd, irqBuf, 8);
      const t4 = cpuMs();
      eventFdDrain(irqfd);
      // Each hop holds one clock read; the total, three more than the device's.
      hopT[0] = t1 - t0 - clockMs;
      hopT[1] = t2 - t1 - clockMs;
      hopT[2] = t3 - t2 - clockMs;
      hopT[3] = t4 - t3 - clockMs;
      return (t4 - t0 - 3 * clockMs) * 1000;
    };
    // What one clock read costs (median), taken out of the figures above.
    let clockMs = 0;
    const calib: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const a = cpuMs();
      calib.push(cpuMs() - a);
    }
    clockMs = median(calib.slice(1000));
    const hopRows = (n: number) => hopNames.map(() => new Array<number>(n));
    const cold: number[] = [];
    const coldHops = hopRows(COLD_COUNT);
    for (let i = 0; i < COLD_FIRST + COLD_COUNT; i++) {
      const us = once();
      if (i < COLD_FIRST) continue;
      cold.push(us);
      for (let h = 0; h < 4; h++) coldHops[h][i - COLD_FIRST] = hopT[h] * 1000;
    }
    for (let i = 0; i < WARM; i++) once();
    const warm: number[] = [];
    const warmHops = hopRows(WARM_TIMED);
    for (let i = 0; i < WARM_TIMED; i++) {
      warm.push(once());
      for (let h = 0; h < 4; h++) warmHops[h][i] = hopT[h] * 1000;
    }
    const med = (rows: number[][]) =>
      Object.fromEntries(hopNames.map((name, h) => [name, median(rows[h])]));
    return { cold, warm, hops: med(warmHops), hopsCold: med(coldHops) };
  } finally {
    closeFd(kick);
    closeFd(irqfd);
    rig.close();
  }
}

const readLib = Deno.dlopen("libc.so.6", {
  read: { parameters: ["i32", "buffer", "usize"], result: "i32", name: "read" },
});
function readI32(fd: number, buf: Uint8Array): number {
  return readLib.symbols.read(fd, buf, 8n);
}

if (ONLY !== "") {
  const t = ONLY === "device" ? await deviceRun() : await syscallRun();
  console.log(JSON.stringify(t));
  Deno.exit(0);
}

async function child(only: string, root?: string): Promise<Times> {
  const deno = Deno.execPath();
  const out = await new Deno.Command(TCG ? "qemu-x86_64" : deno, {
    args: [
      ...(TCG ? [deno] : []),
      "run",
      "-A",
      "--no-check",
      ...(V8 ? [`--v8-flags=${V8}`] : []),
      new URL(import.meta.url).pathname,
      `--only=${only}`,
      `--warm=${WARM}`,
      ...(root ? [`--root=${root}`] : []),
    ],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`net_latency_bench --only=${only} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim()) as Times;
}

if (TCG) await ensureAptPackages(["qemu-user"]);
const runs: Record<string, Times[]> = { device: [], syscalls: [] };
if (BASE) runs.base = [];
for (let i = 0; i < ROUNDS; i++) {
  for (const k of ["device", "syscalls"]) runs[k].push(await child(k));
  if (BASE) runs.base.push(await child("device", Deno.realPathSync(BASE)));
}
const summary = Object.fromEntries(
  Object.entries(runs).map(([k, v]) => [k, {
    cold: median(v.flatMap((t) => t.cold)),
    warm: median(v.flatMap((t) => t.warm)),
    hops: v[0].hops,
    hopsCold: v[0].hopsCold,
  }]),
);
if (Deno.args.includes("--json")) {
  console.log(JSON.stringify(summary));
} else {
  const d = summary.device, s = summary.syscalls;
  console.log(
    `ping through the data path, µs per ping (median of ${ROUNDS} fresh processes each${
      TCG ? ", under qemu-x86_64 (TCG)" : ""
    })\n`,
  );
  console.log("| path | cold (pings 3-22) | warm |\n|---|---|---|");
  console.log(`| device (kick handler -> irqfd) | ${d.cold.toFixed(1)} | ${d.warm.toFixed(1)} |`);
  console.log(`| syscalls only, from JS | ${s.cold.toFixed(1)} | ${s.warm.toFixed(1)} |`);
  console.log(
    `| TypeScript work per ping | ${(d.cold - s.cold).toFixed(1)} | ${
      (d.warm - s.warm).toFixed(1)
    } |`,
  );
  const b = summary.base;
  if (b) {
    console.log(`| base device (${BASE}) | ${b.cold.toFixed(1)} | ${b.warm.toFixed(1)} |`);
    console.log(
      `| base TypeScript work per ping | ${(b.cold - s.cold).toFixed(1)} | ${
        (b.warm - s.warm).toFixed(1)
      } |`,
    );
  }
  console.log("\nsyscall hops (first process), µs cold / warm:");
  for (const k of Object.keys(s.hops ?? {})) {
    console.log(`  ${k}: ${s.hopsCold![k].toFixed(1)} / ${s.hops![k].toFixed(1)}`);
  }
}
