/**
 * Network throughput and latency seen by a Linux guest over a tap: TCP
 * guest->host and host->guest (busybox `nc`, MB/s timed in the guest) and
 * ping round trip, under denovmm (`--nic tap,...`) and QEMU (`-nic
 * tap,model=virtio-net-pci`), each with vhost off and on, on the same KVM
 * in the same run, as ratios.
 *
 * `DENOVMM_NET_BASE=DIR` (a tree inside this repository, e.g. `git archive
 * main | tar -x -C .cache/base`) adds that tree's denovmm, vhost off on the
 * main loop, to the same run, each VMM alternating per round:
 * before/after under the same conditions. `DENOVMM_NET_PATHS=off` measures
 * only vhost=off on the main loop (the short run); `DENOVMM_NET_ROUNDS=N`
 * repeats each VMM N times, alternating, and reports medians.
 *
 * Runs on hardware KVM directly, otherwise inside the nested KVM host
 * (QEMU travels in its image; tun and vhost-net are loaded from the Debian
 * kernel's module tree). Nested numbers measure the emulated stack as much
 * as the VMMs: compare ratios, not MB/s.
 *
 * @module
 */
import { kvmRoute } from "../tests/nested/route.ts";
import { runNested } from "../tests/nested/run_nested.ts";
import { L1_QEMU_BINARY } from "../tests/nested/l1_image.ts";
import { buildTestInitramfs } from "../tests/fixtures/initramfs.ts";
import { linuxFixture } from "../tests/kvm/fixtures.ts";
import {
  ensureHostModules,
  HOST_IP,
  hostTap,
  peers,
  removeTap,
  TAP,
} from "../tests/kvm/_net_host.ts";
import { vhostNetAvailable } from "../devices/virtio/vhost_net.ts";

const REPO = new URL("..", import.meta.url).pathname;
const NESTED = Deno.env.get("DENOVMM_NESTED") === "1";
const MIB = Number(Deno.env.get("DENOVMM_NET_MIB") ?? 1);
const MARK = "DENOVMM-NETBENCH";
const BASE = Deno.env.get("DENOVMM_NET_BASE") ?? "";
const ONLY_OFF = Deno.env.get("DENOVMM_NET_PATHS") === "off";
const ROUNDS = Number(Deno.env.get("DENOVMM_NET_ROUNDS") ?? 1);
const SCRIPT = `
up() { cut -d' ' -f1 /proc/uptime; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ping -c 2 -W 5 ${HOST_IP} > /dev/null 2>&1
echo "${MARK} rtt=$(ping -c 20 -i 0.2 ${HOST_IP} | grep -o 'min/avg/max = [0-9./]*' | cut -d/ -f4)"
t0=$(up); dd if=/dev/zero bs=65536 count=$((${MIB} * 16)) 2>/dev/null | nc ${HOST_IP} 5555; t1=$(up)
echo "${MARK} tx=$(secs $t0 $t1)"
t0=$(up); nc ${HOST_IP} 5556 > /dev/null; t1=$(up)
echo "${MARK} rx=$(secs $t0 $t1)"
`;

const f = await linuxFixture();
const initrd = await buildTestInitramfs({ modules: ["virtio_pci", "virtio_net"], script: SCRIPT });

if (kvmRoute() === "nested") {
  console.log("No hardware /dev/kvm here: running this benchmark inside the nested KVM host.");
  const env: Record<string, string> = { DENOVMM_NET_MIB: String(MIB) };
  if (BASE) env.DENOVMM_NET_BASE = Deno.realPathSync(BASE);
  if (ONLY_OFF) env.DENOVMM_NET_PATHS = "off";
  env.DENOVMM_NET_ROUNDS = String(ROUNDS);
  const r = await runNested(`deno run --no-check -A bench/net_bench.ts`, {
    stream: true,
    qemu: true,
    timeoutS: 1500,
    env,
  });
  Deno.exit(r.code);
}

interface Result {
  tx: number;
  rx: number;
  rtt: number;
}

async function run(cmd: string, args: string[]): Promise<Result> {
  await hostTap();
  const p = peers(new Uint8Array(MIB << 20));
  try {
    const out = await new Deno.Command(cmd, {
      args,
      cwd: REPO,
      stdin: "null",
      signal: AbortSignal.timeout(300_000),
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const get = (k: string) => Number(new RegExp(`${MARK} ${k}=([\\d.]+)`).exec(text)?.[1]);
    const r = { tx: get("tx"), rx: get("rx"), rtt: get("rtt") };
    if (!(r.tx > 0 && r.rx > 0 && r.rtt > 0)) {
      throw new Error(
        `${cmd}: no report\n${text.slice(-3000)}${new TextDecoder().decode(out.stderr)}`,
      );
    }
    return r;
  } finally {
    p.close();
    removeTap();
  }
}

/** Median of each measure over rounds. */
function medianResult(rs: Result[]): Result {
  const med = (k: keyof Result) => {
    const v = rs.map((r) => r[k]).sort((a, b) => a - b);
    const m = v.length >> 1;
    return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2;
  };
  return { tx: med("tx"), rx: med("rx"), rtt: med("rtt") };
}

await ensureHostModules();
const vhostModes = vhostNetAvailable() === null && !ONLY_OFF ? [false, true] : [false];
const qemu = await Deno.stat(L1_QEMU_BINARY).then(() => L1_QEMU_BINARY).catch(() =>
  "qemu-system-x86_64"
);
const cmdline = "console=ttyS0 quiet panic=-1";
const rows: string[] = [];
for (const vhost of vhostModes) {
  const v = vhost ? "on" : "off";
  // deno-fmt-ignore
  const qemuRun = () => run(qemu, [
    "-enable-kvm", "-cpu", "host", "-nographic", "-no-reboot", "-m", "256",
    "-kernel", f.kernel, "-initrd", initrd, "-append", cmdline,
    "-nic", `tap,model=virtio-net-pci,ifname=${TAP},script=no,downscript=no,vhost=${v}`,
  ]);
  // deno-fmt-ignore
  const denovmmRun = (io: string, tree = REPO) => run(Deno.execPath(), [
    "run", "--no-check", "--allow-ffi", `${tree}/main.ts`, "--memory", "256M",
    "--kernel", f.kernel, "--initrd", initrd, "--append", cmdline,
    "--nic", `tap,ifname=${TAP},vhost=${v}${io}`, "--rng", "off",
  ]);
  // The TypeScript data path on the main loop, and (vhost off) on an iothread:
  // an iothread's loop owns its thread and wakes in one hop even from idle.
  const variants = vhost || ONLY_OFF ? [""] : ["", ",iothread=0"];
  const qs: Result[] = [];
  const ds: Result[][] = variants.map(() => []);
  const bs: Result[] = [];
  const note = (name: string, r: Result) => {
    console.log(`${name} vhost=${v}: tx ${r.tx} s, rx ${r.rx} s, rtt ${r.rtt} ms`);
    return r;
  };
  for (let round = 0; round < ROUNDS; round++) {
    qs.push(note("QEMU", await qemuRun()));
    for (let i = 0; i < variants.length; i++) {
      ds[i].push(note(`denovmm${variants[i]}`, await denovmmRun(variants[i])));
    }
    if (BASE && !vhost) bs.push(note("denovmm BASE", await denovmmRun("", BASE)));
  }
  const q = medianResult(qs);
  const measured = variants.map((io, i) => ({
    path: `vhost=${v}${io ? " (iothread)" : ""}`,
    d: medianResult(ds[i]),
  }));
  if (bs.length > 0) measured.push({ path: `vhost=${v} BASE`, d: medianResult(bs) });
  for (const { path, d } of measured) {
    const mbs = (s: number) => MIB / s;
    for (
      const [name, qv, dv] of [["TCP guest->host", q.tx, d.tx], [
        "TCP host->guest",
        q.rx,
        d.rx,
      ]] as const
    ) {
      rows.push(
        `| ${path} | ${name} MB/s | ${mbs(qv).toFixed(1)} | ${mbs(dv).toFixed(1)} | ${
          (qv / dv).toFixed(2)
        }x |`,
      );
    }
    rows.push(
      `| ${path} | ping RTT ms (lower is better) | ${q.rtt.toFixed(3)} | ${d.rtt.toFixed(3)} | ${
        (q.rtt / d.rtt).toFixed(2)
      }x |`,
    );
  }
}
if (vhostModes.length === 1) console.log(`vhost=on not measured: ${vhostNetAvailable()}`);
console.log(
  `KVM: ${NESTED ? "nested (kvm_amd inside QEMU TCG)" : "hardware"}; ${MIB} MiB each way; ` +
    `median of ${ROUNDS} round(s)${BASE ? `; BASE = ${BASE}` : ""}\n`,
);
console.log("| data path | measure | QEMU | denovmm | ratio (denovmm vs QEMU, >1 is better) |");
console.log("|---|---|---|---|---|");
for (const r of rows) console.log(r);
