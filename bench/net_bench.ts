/**
 * Network latency and throughput seen by a Linux guest over a tap: ping
 * round trips (every reply's time, as median and p90) and TCP host->guest
 * and guest->host (busybox `nc`, a random payload checked byte for byte on
 * its way back), under denovmm (`--nic tap,...`) and QEMU (`-nic
 * tap,model=virtio-net-pci`), vhost off and, where the host has
 * /dev/vhost-net, on, on the same KVM in the same run, as ratios against
 * QEMU with issue 13's targets (>= 0.8x vhost off, >= 0.95x vhost on).
 *
 * Made for a noisy host: the VMMs alternate within each round (the order
 * reversed every other round, so a drift over the run weighs on both
 * alike), each round gives one ratio per measure against QEMU of the same
 * round, and the result is the median of those ratios. During the ping and
 * TCP phases it also reads every VMM thread's CPU time (by role: `main`,
 * `vcpu-*`, QEMU's `CPU #/KVM`, ...), so a ratio comes with where the time
 * went.
 *
 * Environment:
 * - `DENOVMM_NET_ROUNDS` rounds (default 4);
 * - `DENOVMM_NET_PINGS` pings per phase (default 50), `DENOVMM_NET_INTERVAL`
 *   seconds between them (default 0.2);
 * - `DENOVMM_NET_MIB` MiB each way (default 64; the guest keeps it in RAM);
 * - `DENOVMM_NET_BASE=DIR` adds another tree's denovmm (vhost off, main
 *   loop) to every round, for before/after in one run; DIR must be inside
 *   this repository so the nested host sees it (e.g. `git archive main |
 *   tar -x -C .cache/base`);
 * - `DENOVMM_NET_PATHS=off` (or `on`) measures vhost off (or on) only;
 *   `DENOVMM_NET_IOTHREAD=1` adds vhost off with the NIC on an iothread; `DENOVMM_NET_V8FLAGS=FLAGS`
 *   adds vhost off with `deno run --v8-flags=FLAGS` (e.g. `--always-sparkplug`:
 *   does the gap shrink when the device path's JavaScript is compiled
 *   sooner?);
 * - `DENOVMM_NET_LIMIT_S` kills a VMM run (SIGKILL) after this many seconds
 *   (default 180; a run takes 30-60 s nested) and counts its round as failed.
 *
 * Runs on hardware KVM directly, otherwise inside the nested KVM host (QEMU
 * travels in its image; tun and vhost-net are loaded from the Debian
 * kernel's module tree). Nested numbers measure the emulated stack as much
 * as the VMMs: compare ratios, not MB/s. Progress goes to stderr.
 *
 * ```sh
 * DENOVMM_NET_ROUNDS=4 deno run -A bench/net_bench.ts
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { kvmRoute } from "../tests/nested/route.ts";
import { runNested } from "../tests/nested/run_nested.ts";
import { L1_QEMU_BINARY } from "../tests/nested/l1_image.ts";
import { buildTestInitramfs } from "../tests/fixtures/initramfs.ts";
import { linuxFixture } from "../tests/kvm/fixtures.ts";
import { ensureHostModules, HOST_IP, hostTap, removeTap, TAP } from "../tests/kvm/_net_host.ts";
import { vhostNetAvailable } from "../devices/virtio/vhost_net.ts";
import { cpuDelta, parseTaskStat, threadCpu } from "./_thread_cpu.ts";
import { median, type Path, type RunResult, summarize } from "./_net_summary.ts";

const REPO = new URL("..", import.meta.url).pathname;
const NESTED = Deno.env.get("DENOVMM_NESTED") === "1";
const env = (k: string, d: string) => Deno.env.get(`DENOVMM_NET_${k}`) ?? d;
const ROUNDS = Number(env("ROUNDS", "4"));
const PINGS = Number(env("PINGS", "50"));
const INTERVAL = env("INTERVAL", "0.2");
const MIB = Number(env("MIB", "64"));
const BASE = env("BASE", "");
const ONLY_OFF = env("PATHS", "") === "off";
const ONLY_ON = env("PATHS", "") === "on";
const IOTHREAD = env("IOTHREAD", "") === "1";
const V8FLAGS = env("V8FLAGS", "");
const LIMIT_S = Number(env("LIMIT_S", "180"));
const MARK = "DENOVMM-NETBENCH";
// Ping first (the guest idle between replies, as a user's ping), then the
// payload to the guest and the same bytes back: the host checks them, and
// so both directions' integrity, without hashing in the guest.
const SCRIPT = `
up() { cut -d' ' -f1 /proc/uptime; }
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ping -c 2 -W 5 ${HOST_IP} > /dev/null 2>&1
echo "${MARK} ping-begin"
ping -c ${PINGS} -i ${INTERVAL} ${HOST_IP} > /tmp/ping 2>&1
echo "${MARK} ping-end"
echo "${MARK} rtts=$(sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' /tmp/ping | tr '\\n' ',')"
echo "${MARK} tcp-begin"
rxp() { cat /sys/class/net/eth0/statistics/rx_packets; }
intr() { awk '/^intr/ { print $2 }' /proc/stat; }
p0=$(rxp); i0=$(intr)
t0=$(up); nc ${HOST_IP} 5556 > /tmp/in; t1=$(up)
echo "${MARK} rx-secs=$(awk -v a=$t0 -v b=$t1 'BEGIN { printf "%.2f", b - a }') rx-bytes=$(wc -c < /tmp/in) rx-packets=$(($(rxp) - p0)) rx-interrupts=$(($(intr) - i0))"
nc ${HOST_IP} 5555 < /tmp/in
echo "${MARK} tcp-end"
`;

for (const [k, v] of [["ROUNDS", ROUNDS], ["PINGS", PINGS], ["MIB", MIB], ["LIMIT_S", LIMIT_S]]) {
  if (!(Number(v) > 0)) {
    console.error(`DENOVMM_NET_${k} must be a positive number`);
    Deno.exit(1);
  }
}

if (kvmRoute() === "nested") {
  console.log("No hardware /dev/kvm here: running this benchmark inside the nested KVM host.");
  const pass: Record<string, string> = {};
  for (
    const k of ["ROUNDS", "PINGS", "INTERVAL", "MIB", "PATHS", "IOTHREAD", "V8FLAGS", "LIMIT_S"]
  ) {
    const v = Deno.env.get(`DENOVMM_NET_${k}`);
    if (v !== undefined) pass[`DENOVMM_NET_${k}`] = v;
  }
  if (BASE) pass.DENOVMM_NET_BASE = Deno.realPathSync(BASE);
  const runsPerRound = (ONLY_ON ? 0 : 2) + (ONLY_OFF ? 0 : 2) + (BASE ? 1 : 0) +
    (IOTHREAD ? 1 : 0) +
    (V8FLAGS ? 1 : 0);
  const r = await runNested(`deno run --no-check -A bench/net_bench.ts`, {
    stream: true,
    qemu: true,
    timeoutS: 600 + ROUNDS * runsPerRound * (60 + PINGS * Number(INTERVAL) + MIB * 4),
    idleTimeoutS: LIMIT_S + 120,
    env: pass,
  });
  Deno.exit(r.code);
}

const f = await linuxFixture();
const initrd = await buildTestInitramfs({ modules: ["virtio_pci", "virtio_net"], script: SCRIPT });
const payload = new Uint8Array(MIB << 20);
for (let o = 0; o < payload.length; o += 65536) {
  crypto.getRandomValues(payload.subarray(o, o + 65536));
}

/**
 * The host's TCP peers: 5556 sends the payload, 5555 takes it back, timed and
 * compared. close() also closes the connections: a guest that died mid-way
 * sends no FIN, and an open one would keep this process alive.
 */
function peers() {
  const inbound = Deno.listen({ hostname: HOST_IP, port: 5555 });
  const outbound = Deno.listen({ hostname: HOST_IP, port: 5556 });
  const conns: Deno.Conn[] = [];
  const back = (async () => {
    const conn = await inbound.accept();
    conns.push(conn);
    const t0 = performance.now();
    const got = new Uint8Array(payload.length);
    let n = 0;
    for await (const c of conn.readable) {
      if (n + c.length <= got.length) got.set(c, n);
      n += c.length;
    }
    const secs = (performance.now() - t0) / 1000;
    const same = n === payload.length && Buffer.compare(got, payload) === 0;
    return { secs, same, bytes: n };
  })();
  back.catch(() => {});
  (async () => {
    const conn = await outbound.accept();
    conns.push(conn);
    const w = conn.writable.getWriter();
    await w.write(payload);
    await w.close();
  })().catch(() => {});
  return {
    back,
    close() {
      for (const c of [inbound, outbound, ...conns]) {
        try {
          c.close();
        } catch {
          // Closed already (a stream that ended closes its connection).
        }
      }
    },
  };
}

/**
 * The host's side of the host->guest transfer: frames the tap dropped on
 * their way to the VMM (its queue full), TCP segments retransmitted, and
 * where the host's CPUs went.
 */
interface HostCounters {
  dropped: number;
  retrans: number;
  /** The host's CPU time by kind (user, system, softirq, idle...), all CPUs, s. */
  cpu: Map<string, number>;
  /** CPU s of the vhost worker threads serving the VMM (`vhost-PID`). */
  vhost: number;
  /** CPU s of this process (the TCP peer). */
  self: number;
}

const STAT_FIELDS = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];

/** CPU s of every thread named `vhost-<pid>` (kernel threads before Linux 6.4). */
function vhostCpu(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  let sum = 0;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      for (const t of Deno.readDirSync(`/proc/${e.name}/task`)) {
        const task = parseTaskStat(Deno.readTextFileSync(`/proc/${e.name}/task/${t.name}/stat`));
        if (task.comm === `vhost-${pid}`) sum += task.cpuS;
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return sum;
}

function hostCounters(pid?: number): HostCounters {
  const read = (p: string) => {
    try {
      return Deno.readTextFileSync(p);
    } catch {
      return "";
    }
  };
  const dropped = Number(read(`/sys/class/net/${TAP}/statistics/tx_dropped`).trim() || NaN);
  const tcp = read("/proc/net/snmp").split("\n").filter((l) => l.startsWith("Tcp:"));
  const i = tcp[0]?.split(" ").indexOf("RetransSegs") ?? -1;
  const retrans = i > 0 ? Number(tcp[1]?.split(" ")[i]) : NaN;
  const cpu = new Map<string, number>();
  const line = read("/proc/stat").split("\n")[0].split(/\s+/).slice(1).map(Number);
  STAT_FIELDS.forEach((k, i) => cpu.set(k, line[i] / 100));
  const self = [...(threadCpu(Deno.pid)?.values() ?? [])].reduce((a, b) => a + b, 0);
  return { dropped, retrans, cpu, vhost: vhostCpu(pid), self };
}

/** MiB of a process's anonymous memory in transparent huge pages (smaps_rollup). */
function hugeMiB(pid: number): number {
  try {
    const t = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
    return Number(/^AnonHugePages:\s+(\d+) kB/m.exec(t)?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}

/** Where the host's CPUs went between two samples, as a line: kinds, VMM threads, vhost, the peer. */
function hostCpuLine(a: HostCounters, b: HostCounters, vmm: Map<string, number>): string {
  const kinds = STAT_FIELDS.map((k) => [k, b.cpu.get(k)! - a.cpu.get(k)!] as const)
    .filter(([, v]) => v >= 0.005).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
  const roles = [...vmm].filter(([, v]) => v >= 0.005).sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
  const vhost = b.vhost - a.vhost;
  return `host CPU s: ${kinds}; VMM threads: ${roles}` +
    (Number.isNaN(vhost) ? "" : `; vhost worker ${vhost.toFixed(2)}`) +
    `; TCP peer ${(b.self - a.self).toFixed(2)}`;
}

/** One VMM boot: ping phase, TCP phase; null (with the reason on stderr) when it gave no report. */
async function run(label: string, cmd: string, args: string[]): Promise<RunResult | null> {
  await hostTap();
  const p = peers();
  const t0 = performance.now();
  try {
    const child = new Deno.Command(cmd, {
      args,
      cwd: REPO,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let killed = false;
    const killer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, LIMIT_S * 1000);
    let err = "";
    const errDone = (async () => {
      const d = new TextDecoder();
      for await (const c of child.stderr) err = (err + d.decode(c, { stream: true })).slice(-4000);
    })();
    const samples = new Map<string, Map<string, number> | null>();
    const hostAt = new Map<string, HostCounters>();
    const vmmAt = new Map<string, Map<string, number> | null>();
    let hugeAtRx = NaN;
    const tail: string[] = [];
    const found = new Map<string, string>();
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of child.stdout) {
      buf += dec.decode(chunk, { stream: true });
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl).trimEnd();
        buf = buf.slice(nl + 1);
        tail.push(line);
        if (tail.length > 30) tail.shift();
        const m = new RegExp(`^${MARK} (.*)$`).exec(line);
        if (!m) continue;
        if (/^(ping|tcp)-(begin|end)$/.test(m[1])) samples.set(m[1], threadCpu(child.pid));
        if (m[1] === "tcp-begin") hostAt.set("begin", hostCounters(child.pid));
        if (m[1].startsWith("rx-secs=")) {
          hostAt.set("rx", hostCounters(child.pid));
          vmmAt.set("rx", threadCpu(child.pid));
          hugeAtRx = hugeMiB(child.pid);
        }
        for (const kv of m[1].matchAll(/(\S+)=(\S*)/g)) found.set(kv[1], kv[2]);
      }
    }
    const status = await child.status;
    clearTimeout(killer);
    await errDone;
    const back = await Promise.race([
      p.back,
      new Promise<null>((r) => setTimeout(() => r(null), 2000)),
    ]);
    const rtts = (found.get("rtts") ?? "").split(",").filter((x) => x).map(Number);
    const rx = Number(found.get("rx-secs"));
    const why = killed
      ? `killed after ${LIMIT_S} s`
      : rtts.length < PINGS / 2
      ? `${rtts.length} of ${PINGS} ping replies`
      : !(rx > 0) || Number(found.get("rx-bytes")) !== payload.length
      ? `host->guest: ${found.get("rx-bytes")} of ${payload.length} bytes`
      : back === null
      ? "the payload never came back"
      : !back.same
      ? `the payload came back different (${back.bytes} bytes)`
      : "";
    if (why) {
      console.error(`${label}: no result (${why}; exit ${status.code})`);
      console.error(`  guest's last lines:\n    ${tail.join("\n    ")}\n  stderr:\n${err}`);
      return null;
    }
    const ping = cpuDelta(samples.get("ping-begin") ?? null, samples.get("ping-end") ?? null);
    const tcp = cpuDelta(samples.get("tcp-begin") ?? null, samples.get("tcp-end") ?? null);
    const r: RunResult = { rtts, rx, tx: back!.secs, pingCpu: ping, tcpCpu: tcp };
    const hb = hostAt.get("begin"), hr = hostAt.get("rx");
    const pkts = Number(found.get("rx-packets"));
    console.error(
      `${label}: host->guest ${pkts} frames in the guest (${
        (payload.length / pkts / 1024).toFixed(1)
      } KiB each), ${found.get("rx-interrupts")} guest interrupts; host: tap ${
        hb && hr ? hr.dropped - hb.dropped : "?"
      } dropped, TCP ${hb && hr ? hr.retrans - hb.retrans : "?"} segments retransmitted`,
    );
    if (hb && hr) {
      const vmm = cpuDelta(samples.get("tcp-begin") ?? null, vmmAt.get("rx") ?? null);
      console.error(
        `${label}: host->guest phase (${rx.toFixed(2)} s in the guest): ${
          hostCpuLine(hb, hr, vmm)
        }; VMM memory in huge pages ${hugeAtRx.toFixed(0)} MiB`,
      );
    }
    console.error(
      `${label}: ping median ${median(rtts).toFixed(3)} ms (${rtts.length} replies), ` +
        `host->guest ${(MIB / rx).toFixed(1)} MB/s, guest->host ${(MIB / r.tx).toFixed(1)} MB/s, ` +
        `payload checked; ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );
    return r;
  } finally {
    p.close();
    removeTap();
  }
}

await ensureHostModules();
const vhostWhy = ONLY_OFF ? "DENOVMM_NET_PATHS=off" : vhostNetAvailable();
const qemu = await Deno.stat(L1_QEMU_BINARY).then(() => L1_QEMU_BINARY).catch(() =>
  "qemu-system-x86_64"
);
const cmdline = "console=ttyS0 quiet panic=-1";
const qemuArgs = (v: string) => [
  ...["-enable-kvm", "-cpu", "host", "-nographic", "-no-reboot", "-m", "256"],
  ...["-name", "net,debug-threads=on", "-kernel", f.kernel, "-initrd", initrd],
  ...["-append", cmdline, "-nic"],
  `tap,model=virtio-net-pci,ifname=${TAP},script=no,downscript=no,vhost=${v}`,
];
const denovmmArgs = (v: string, io = "", tree = REPO, v8 = "") => [
  ...["run", "--no-check", "--allow-ffi", ...(v8 ? [`--v8-flags=${v8}`] : [])],
  ...[`${tree}/main.ts`, "--memory", "256M"],
  ...["--kernel", f.kernel, "--initrd", initrd, "--append", cmdline, "--rng", "off"],
  ...["--nic", `tap,ifname=${TAP},vhost=${v}${io}`],
];

/** A VMM configuration measured every round. */
interface Runner {
  key: string;
  start(): Promise<RunResult | null>;
}
const runners: Runner[] = [];
const paths: Path[] = [];
for (const v of vhostWhy === null ? (ONLY_ON ? ["on"] : ["off", "on"]) : ["off"]) {
  const q = `QEMU vhost=${v}`;
  runners.push({ key: q, start: () => run(q, qemu, qemuArgs(v)) });
  const target = v === "off" ? 0.8 : 0.95;
  const ours: [string, string[]][] = [[`denovmm vhost=${v}`, denovmmArgs(v)]];
  if (v === "off" && IOTHREAD) {
    ours.push([`denovmm vhost=off iothread`, denovmmArgs(v, ",iothread=0")]);
  }
  if (v === "off" && V8FLAGS) {
    ours.push([`denovmm vhost=off ${V8FLAGS}`, denovmmArgs(v, "", REPO, V8FLAGS)]);
  }
  if (v === "off" && BASE) ours.push([`BASE vhost=off`, denovmmArgs(v, "", BASE)]);
  for (const [key, args] of ours) {
    runners.push({ key, start: () => run(key, Deno.execPath(), args) });
    paths.push({ key, qemu: q, target });
  }
}

const results = new Map<string, (RunResult | null)[]>(runners.map((r) => [r.key, []]));
const t0 = performance.now();
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? runners : [...runners].reverse();
  for (const r of order) {
    const min = ((performance.now() - t0) / 60000).toFixed(1);
    console.error(`[${min} min] round ${round + 1}/${ROUNDS}: ${r.key} ...`);
    results.get(r.key)!.push(await r.start());
  }
}

console.log(
  `\nKVM: ${NESTED ? "nested (kvm_amd inside QEMU TCG)" : "hardware"}; ${ROUNDS} rounds, ` +
    `VMMs alternating (order reversed every other round); ${PINGS} pings ${INTERVAL} s apart ` +
    `per run; ${MIB} MiB each way, checked${BASE ? `; BASE = ${BASE}` : ""}` +
    (vhostWhy === null ? "" : `; vhost=on not measured: ${vhostWhy}`) + "\n",
);
console.log(summarize(results, paths, { pings: PINGS, mib: MIB, base: BASE ? "BASE" : "" }));
// Nothing left to wait for: a connection or timer of a failed run must not hold the exit.
Deno.exit(0);
