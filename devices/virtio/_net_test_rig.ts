/**
 * A virtio-net device on a real tap inside a network namespace the test
 * creates, driven by {@link TestDriver}: the host side of the tap is
 * 10.77.0.1 in the namespace, the "guest" is 10.77.0.2 with the device's
 * MAC (a static neighbour entry, so no ARP is needed).
 *
 * @module
 */
import { GuestMemory } from "../../memory/guest_memory.ts";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { openTap, type Tap } from "../../sys/tun.ts";
import { ensureAptPackages } from "../../tests/fixtures/debian.ts";
import { CountingSink, TestDriver, wireDevice } from "./_test_driver.ts";
import { VirtioNet } from "./net.ts";
import { VhostNet } from "./vhost_net.ts";
import type { VirtioDevice } from "./device.ts";
import type { VirtioPciDevice } from "./pci.ts";
import type { VirtioPciBackend } from "./pci_backend.ts";

/** The guest's MAC in these tests. */
export const GUEST_MAC = Uint8Array.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
/** Host-side address of the tap. */
export const HOST_IP = [10, 77, 0, 1];
/** The guest's address. */
export const GUEST_IP = [10, 77, 0, 2];

/** Everything a net test touches. */
export interface NetRig {
  ns: string;
  tap: Tap;
  hostMac: Uint8Array;
  mem: GuestMemory;
  loop: MainLoop;
  /** The TypeScript data path (a stand-in facade when `vhost` was asked for). */
  net: VirtioNet;
  /** The device under test (a VhostNet with `vhost`). */
  device: VirtioDevice;
  dev: VirtioPciDevice;
  backend: VirtioPciBackend;
  drv: TestDriver;
  sink: CountingSink;
  logs: string[];
  /** Runs a command inside the namespace; throws on failure. */
  nsRun(cmd: string[]): Promise<string>;
}

/** Why tap tests cannot run here (they need root for netns and tap creation), or null. */
export const NET_TESTS_UNAVAILABLE: string | null = (() => {
  if (Deno.uid() !== 0) return "tap tests need root (network namespaces, tap creation)";
  try {
    Deno.statSync("/dev/net/tun");
  } catch {
    return "tap tests need /dev/net/tun";
  }
  return null;
})();
if (NET_TESTS_UNAVAILABLE) console.log(`Not run: ${NET_TESTS_UNAVAILABLE}`);

/**
 * Registers a test that needs a tap in a namespace; ignored (with the
 * reason printed once) where that is impossible.
 *
 * @param name test name
 * @param fn the test
 */
export function netTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: NET_TESTS_UNAVAILABLE !== null, fn });
}

let counter = 0;

async function run(cmd: string[]): Promise<string> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1) }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return text;
}

/**
 * Runs `body` with a fresh namespace, tap, device and driver, then tears it
 * all down.
 *
 * @param body the test
 * @param options queue sizes and features the driver accepts (not yet initialised when accept is null)
 */
export async function withNetRig(
  body: (r: NetRig) => Promise<void> | void,
  options: { rxSize?: number; txSize?: number; mtu?: number; vhost?: boolean } = {},
): Promise<void> {
  await ensureAptPackages(["iproute2", "python3"]);
  const id = `${Deno.pid % 100000}x${counter++}`;
  const ns = `denovmm-net-${id}`;
  const tapName = `dvm${id}`;
  await run(["ip", "netns", "add", ns]);
  const nsRun = (cmd: string[]) => run(["ip", "netns", "exec", ns, ...cmd]);
  let tap: Tap | null = null;
  const loop = new MainLoop();
  const done = loop.run();
  const mem = GuestMemory.allocate(16 << 20);
  try {
    await nsRun(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    await nsRun(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    tap = openTap(tapName);
    await run(["ip", "link", "set", tapName, "netns", ns]);
    await nsRun(["ip", "link", "set", tapName, "mtu", String(options.mtu ?? 9000), "up"]);
    await nsRun(["ip", "addr", "add", `${HOST_IP.join(".")}/24`, "dev", tapName]);
    const mac = [...GUEST_MAC].map((b) => b.toString(16).padStart(2, "0")).join(":");
    await nsRun(["ip", "neigh", "replace", GUEST_IP.join("."), "lladdr", mac, "dev", tapName]);
    const info = JSON.parse(await nsRun(["ip", "-j", "link", "show", tapName]));
    const hostMac = Uint8Array.from(
      (info[0].address as string).split(":").map((h) => parseInt(h, 16)),
    );
    const net = new VirtioNet({ tap, loop, mac: GUEST_MAC });
    const device: VirtioDevice = options.vhost ? new VhostNet({ tap, loop, mac: GUEST_MAC }) : net;
    const sink = new CountingSink();
    const logs: string[] = [];
    const { dev, backend } = wireDevice(device, mem, { interrupt: sink, log: (m) => logs.push(m) });
    const drv = new TestDriver(mem, dev, {
      sizes: [options.rxSize ?? 64, options.txSize ?? 64],
    });
    await body({ ns, tap, hostMac, mem, loop, net, device, dev, backend, drv, sink, logs, nsRun });
    if (device instanceof VhostNet) {
      device.reset(() => {});
      device.close();
    }
  } finally {
    loop.stop();
    await done;
    loop.close();
    tap?.close();
    mem.close();
    await run(["ip", "netns", "del", ns]).catch(() => {});
  }
}

/**
 * Waits until `pred` holds, letting the loop run.
 *
 * @param pred the condition
 * @param ms how long to wait
 */
export function until(pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pred()) resolve();
      else if (Date.now() > end) reject(new Error("Condition not met in time"));
      else setTimeout(check, 2);
    };
    check();
  });
}

/** Lets the loop run for `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The Internet checksum of `b`, folded, with `sum` as the starting value. */
export function inetChecksum(b: Uint8Array, sum = 0): number {
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (b.length & 1) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * An Ethernet frame with an IPv4 ICMP echo request from the guest to the host.
 *
 * @param dstMac the host's MAC
 * @param seq echo sequence number
 * @param payload echo data
 * @returns the frame
 */
export function icmpEchoFrame(dstMac: Uint8Array, seq: number, payload: Uint8Array): Uint8Array {
  const ipLen = 20 + 8 + payload.length;
  const f = new Uint8Array(14 + ipLen);
  const v = new DataView(f.buffer);
  f.set(dstMac, 0);
  f.set(GUEST_MAC, 6);
  v.setUint16(12, 0x0800);
  const ip = f.subarray(14, 34);
  ip[0] = 0x45;
  v.setUint16(16, ipLen);
  v.setUint16(18, seq);
  ip[8] = 64;
  ip[9] = 1;
  ip.set(GUEST_IP, 12);
  ip.set(HOST_IP, 16);
  v.setUint16(24, ~inetChecksum(ip) & 0xffff);
  const icmp = f.subarray(34);
  icmp[0] = 8;
  v.setUint16(38, 0x4242);
  v.setUint16(40, seq);
  icmp.set(payload, 8);
  v.setUint16(36, ~inetChecksum(icmp) & 0xffff);
  return f;
}

/**
 * Sends UDP datagrams from the namespace to the guest (port 9).
 *
 * @param r the rig
 * @param sizes payload bytes of each datagram (filled with a pattern)
 */
export async function sendUdpFromHost(r: NetRig, sizes: number[]): Promise<void> {
  const py = "import socket,sys\n" +
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n" +
    "for n in map(int, sys.argv[1:]):\n" +
    "  s.sendto(bytes((i*7+n)&255 for i in range(n)), ('" + GUEST_IP.join(".") + "', 9))\n";
  await r.nsRun(["python3", "-c", py, ...sizes.map(String)]);
}

/** The pattern sendUdpFromHost puts in a datagram of n bytes. */
export function udpPattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + n) & 255;
  return b;
}
