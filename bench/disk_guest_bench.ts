/**
 * Disk throughput seen by a Linux guest: `dd` on /dev/vda inside Debian's
 * stock kernel, under denovmm (`--disk`, virtio-blk-pci, aio thread pool; the
 * queue on the main loop, the default, and on an iothread) and under QEMU
 * (`-enable-kvm`, `-drive if=virtio`, same image), on the same KVM in the
 * same run, as a ratio of MB/s.
 *
 * "Cold" is the guest's cache: each read phase starts after the guest drops
 * its page cache. The image lives in the host's page cache under both VMMs
 * alike (QEMU's default `cache=writeback`; in the nested host /tmp is tmpfs).
 * Each phase runs twice (`read`, `read2`): the first pays whatever a VMM
 * starts lazily (aio threads), the second shows its steady state.
 *
 * Besides MB/s it prints, per phase, what the guest's block layer saw
 * (`/sys/block/vda/stat` deltas: requests, average KiB per request,
 * milliseconds per request, average requests in flight), the guest's queue
 * limits and virtio feature bits, and on the host each VMM's CPU time by
 * thread (from `/proc/PID/task`, grouped by thread name), its thread count
 * and its anonymous huge pages.
 *
 * Runs on hardware KVM directly, otherwise inside the nested KVM host (whose
 * L1 image then carries QEMU too). Numbers from the nested host measure the
 * emulated stack as much as the VMMs: compare the ratio, not the MB/s.
 * `DENOVMM_DD_MIB` sets the size (default 64), `DENOVMM_DD_VMMS` a subset
 * (comma-separated: qemu, denovmm, denovmm-iothread, denovmm-uring, base),
 * `DENOVMM_DD_ROUNDS` how many times each runs (interleaved, every other
 * round in reverse order; medians are shown, default 1). `base` is denovmm from another tree, for before/after
 * in one run: `DENOVMM_DD_BASE=.cache/dd_base` holding `git archive` of the
 * old commit (inside the repository, so the nested host sees it).
 * `DENOVMM_DD_STATS=1` adds denovmm's `--stats-interval 1` lines per phase.
 * A VMM run still going after `DENOVMM_DD_LIMIT_S` (240 s) is killed with
 * SIGKILL and its round reported as hung, with the guest's last lines.
 *
 * @module
 */
import { kvmRoute } from "../tests/nested/route.ts";
import { runNested } from "../tests/nested/run_nested.ts";
import { L1_QEMU_BINARY } from "../tests/nested/l1_image.ts";
import { debianKernel } from "../tests/fixtures/debian.ts";
import { buildTestInitramfs } from "../tests/fixtures/initramfs.ts";

const REPO = new URL("..", import.meta.url).pathname;
const NESTED = Deno.env.get("DENOVMM_NESTED") === "1";
const MIB = Number(Deno.env.get("DENOVMM_DD_MIB") ?? 64);
const MARK = "DENOVMM-DD";
const PHASES = ["read", "read2", "write", "write2"] as const;
type Phase = typeof PHASES[number];
// Each phase: a marker (the host samples the VMM's threads), a pause so the
// sample lands, the stat line before, dd, the stat line after.
const SCRIPT = `
up() { cut -d' ' -f1 /proc/uptime; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
st() { tr -s ' ' ',' < /sys/block/vda/stat; }
q=/sys/block/vda/queue
echo "${MARK} queue max_sectors_kb=$(cat $q/max_sectors_kb) max_hw_sectors_kb=$(cat $q/max_hw_sectors_kb) max_segments=$(cat $q/max_segments) max_segment_size=$(cat $q/max_segment_size) read_ahead_kb=$(cat $q/read_ahead_kb) nr_requests=$(cat $q/nr_requests) mq=$(ls /sys/block/vda/mq | wc -l)"
echo "${MARK} features $(cat /sys/block/vda/device/features 2>/dev/null)"
phase() {
  echo 3 > /proc/sys/vm/drop_caches
  echo "${MARK} begin $1"; sleep 1
  s0=$(st); t0=$(up); eval "$2"; t1=$(up); s1=$(st)
  echo "${MARK} end $1 secs=$(secs $t0 $t1) before=$s0 after=$s1"; sleep 1
}
phase read "dd if=/dev/vda of=/dev/null bs=1M count=${MIB} 2>/dev/null"
phase read2 "dd if=/dev/vda of=/dev/null bs=1M count=${MIB} 2>/dev/null"
phase write "dd if=/dev/zero of=/dev/vda bs=1M count=${MIB} conv=fsync 2>/dev/null"
phase write2 "dd if=/dev/zero of=/dev/vda bs=1M count=${MIB} conv=fsync 2>/dev/null"
`;

const kernel = (await debianKernel("amd64")).vmlinuz;
const initrd = await buildTestInitramfs({ modules: ["virtio_pci", "virtio_blk"], script: SCRIPT });

if (kvmRoute() === "nested") {
  console.log("No hardware /dev/kvm here: running this benchmark inside the nested KVM host.");
  const env: Record<string, string> = {};
  for (
    const k of [
      "DENOVMM_DD_MIB",
      "DENOVMM_DD_VMMS",
      "DENOVMM_DD_ROUNDS",
      "DENOVMM_DD_BASE",
      "DENOVMM_DD_STATS",
      "DENOVMM_DD_LIMIT_S",
    ]
  ) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  const r = await runNested(`deno run --no-check -A bench/disk_guest_bench.ts`, {
    stream: true,
    qemu: true,
    timeoutS: 1500,
    env,
  });
  Deno.exit(r.code);
}

/** Seconds one VMM run may take before it is killed (DENOVMM_DD_LIMIT_S). */
const LIMIT_S = Number(Deno.env.get("DENOVMM_DD_LIMIT_S") ?? 240);

/** A VMM run that gave no report (hung and killed, or failed). */
class HungError extends Error {}

/** CPU seconds by thread group, and process facts, at one moment. */
interface Sample {
  cpu: Map<string, number>;
  /** Threads per group. */
  count: Map<string, number>;
  threads: number;
  anonHugeKib: number;
}

/** Thread name → group: `aio-7` → `aio-*`, QEMU's `worker` stays. */
function group(comm: string): string {
  return comm.replace(/-\d+$/, "-*").replace(/^CPU \d+\/KVM$/, "CPU */KVM");
}

function sample(pid: number): Sample | null {
  const ticks = 100; // USER_HZ
  const cpu = new Map<string, number>();
  const count = new Map<string, number>();
  let threads = 0;
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const stat = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/stat`);
        const close = stat.lastIndexOf(")");
        const comm = stat.slice(stat.indexOf("(") + 1, close);
        const f = stat.slice(close + 2).split(" ");
        const s = (Number(f[11]) + Number(f[12])) / ticks; // utime, stime
        const g = group(comm);
        cpu.set(g, (cpu.get(g) ?? 0) + s);
        count.set(g, (count.get(g) ?? 0) + 1);
        threads++;
      } catch { /* the thread left */ }
    }
    const smaps = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
    const huge = /AnonHugePages:\s+(\d+)/.exec(smaps);
    return { cpu, count, threads, anonHugeKib: huge ? Number(huge[1]) : 0 };
  } catch {
    return null;
  }
}

/** What the guest's block layer saw in one phase (/sys/block/vda/stat deltas). */
interface PhaseResult {
  secs: number;
  ios: number;
  kib: number;
  msPerIo: number;
  depth: number;
  /** CPU seconds by thread group during the phase. */
  cpu: Map<string, number>;
  /** Threads per group at the phase's end. */
  count: Map<string, number>;
  /** denovmm's statistics lines during the phase. */
  stats: string[];
  threads: number;
  anonHugeKib: number;
}

function statDelta(before: string, after: string, write: boolean) {
  const f = (s: string) => s.split(",").filter((x) => x !== "").map(Number);
  const a = f(before), b = f(after);
  const i = write ? 4 : 0;
  const ios = b[i] - a[i];
  const sectors = b[i + 2] - a[i + 2];
  const ticks = b[i + 3] - a[i + 3];
  const ioTicks = b[9] - a[9], inQueue = b[10] - a[10];
  return {
    ios,
    kib: ios > 0 ? sectors / 2 / ios : NaN,
    msPerIo: ios > 0 ? ticks / ios : NaN,
    depth: ioTicks > 0 ? inQueue / ioTicks : NaN,
  };
}

/** What one VMM's guest measured. */
interface DdResult {
  phases: Record<Phase, PhaseResult>;
  queue: string;
  features: string;
}

async function run(cmd: string, args: string[], cwd = REPO): Promise<DdResult> {
  const child = new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const begins = new Map<string, Sample | null>();
  const phases: Partial<Record<Phase, PhaseResult>> = {};
  let text = "", queue = "?", features = "?";
  const tail: string[] = [];
  // A VMM that hangs (a guest stuck on a request, a shutdown waiting for one)
  // may ignore SIGTERM: it is killed, and the round reported as hung.
  let hung = false;
  const killer = setTimeout(() => {
    hung = true;
    child.kill("SIGKILL");
  }, LIMIT_S * 1000);
  const statLines: string[] = [];
  let err = "";
  const stderr = (async () => {
    const d = new TextDecoder();
    let buf = "";
    for await (const chunk of child.stderr) {
      buf += d.decode(chunk, { stream: true });
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith("denovmm: stats:")) statLines.push(line.slice(16));
        else err += line + "\n";
      }
    }
  })();
  const dec = new TextDecoder();
  for await (const chunk of child.stdout) {
    text += dec.decode(chunk, { stream: true });
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n")) {
      const line = text.slice(0, nl);
      text = text.slice(nl + 1);
      onLine(line);
    }
  }
  const status = await child.status;
  clearTimeout(killer);
  await stderr;
  function onLine(line: string): void {
    const b = new RegExp(`${MARK} begin (\\w+)`).exec(line);
    if (b) {
      begins.set(b[1], sample(child.pid));
      statLines.length = 0;
    }
    const e = new RegExp(`${MARK} end (\\w+) secs=([\\d.]+) before=(\\S+) after=(\\S+)`).exec(
      line,
    );
    if (e) {
      const s0 = begins.get(e[1]), s1 = sample(child.pid);
      const cpu = new Map<string, number>();
      for (const [k, v] of s1?.cpu ?? []) cpu.set(k, v - (s0?.cpu.get(k) ?? 0));
      phases[e[1] as Phase] = {
        secs: Number(e[2]),
        ...statDelta(e[3], e[4], e[1].startsWith("write")),
        cpu,
        count: s1?.count ?? new Map(),
        stats: statLines.splice(0),
        threads: s1?.threads ?? NaN,
        anonHugeKib: s1?.anonHugeKib ?? NaN,
      };
    }
    const q = new RegExp(`${MARK} queue (.*)`).exec(line);
    if (q) queue = q[1];
    const f = new RegExp(`${MARK} features (.*)`).exec(line);
    if (f) features = f[1];
    tail.push(line);
    if (tail.length > 40) tail.shift();
  }
  if (PHASES.some((p) => !phases[p])) {
    const why = hung ? `hung: killed after ${LIMIT_S} s` : `exit ${status.code}`;
    throw new HungError(`${cmd}: no dd report (${why})\n${tail.join("\n")}\n${err}`);
  }
  return { phases: phases as Record<Phase, PhaseResult>, queue, features };
}

const ALL = ["qemu", "denovmm", "denovmm-iothread", "denovmm-uring", "base"];
const VMMS = (Deno.env.get("DENOVMM_DD_VMMS") ?? "qemu,denovmm,denovmm-iothread").split(",");
const ROUNDS = Number(Deno.env.get("DENOVMM_DD_ROUNDS") ?? 1);
const BASE = Deno.env.get("DENOVMM_DD_BASE");
const STATS = Deno.env.get("DENOVMM_DD_STATS") === "1";
for (const v of VMMS) if (!ALL.includes(v)) throw new Error(`Unknown VMM ${v}: ${ALL}`);
if (!VMMS.includes("qemu")) throw new Error("DENOVMM_DD_VMMS must include qemu (the baseline)");
if (VMMS.includes("base") && !BASE) throw new Error("base needs DENOVMM_DD_BASE");
const dir = await Deno.makeTempDir({ prefix: "denovmm-dd-", dir: "/tmp" });
const image = `${dir}/disk.img`;
const cmdline = "console=ttyS0 quiet panic=-1";
const results: Record<string, (DdResult | null)[]> = {};
try {
  for (let round = 0; round < ROUNDS; round++) {
    // Every other round in reverse order, so a drift over the run weighs on all alike.
    for (const vmm of round % 2 === 0 ? VMMS : [...VMMS].reverse()) {
      console.error(`round ${round + 1}/${ROUNDS}: ${vmm} ...`);
      // A fresh, fully allocated image each time, so both read the same blocks.
      await Deno.writeFile(image, new Uint8Array(MIB << 20));
      const qemu = await Deno.stat(L1_QEMU_BINARY).then(() => L1_QEMU_BINARY).catch(() =>
        "qemu-system-x86_64"
      );
      const disk = vmm === "denovmm" || vmm === "base"
        ? image
        : vmm === "denovmm-uring"
        ? `${image},aio=io_uring`
        : `${image},iothread=0`;
      const started = vmm === "qemu"
        // deno-fmt-ignore
        ? run(qemu, [
          "-enable-kvm", "-cpu", "host", "-nographic", "-no-reboot", "-m", "256",
          "-name", "dd,debug-threads=on",
          "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
          "-drive", `file=${image},if=virtio,format=raw`,
        ])
        // deno-fmt-ignore
        : run(Deno.execPath(), [
          "run", "--no-check", "--allow-ffi", "main.ts", "--memory", "256M",
          "--kernel", kernel, "--initrd", initrd, "--append", cmdline, "--disk", disk,
          ...(STATS ? ["--stats-interval", "1"] : []),
        ], vmm === "base" ? new URL(BASE!, `file://${REPO}`).pathname : REPO);
      const r = await started.catch((e) => {
        if (!(e instanceof HungError)) throw e;
        console.log(`round ${round + 1} ${vmm}: no report: ${e.message.split("\n")[0]}`);
        console.log(e.message.split("\n").slice(1, 25).join("\n"));
        return null;
      });
      (results[vmm] ??= []).push(r);
      if (r === null) continue;
      console.log(
        `round ${round + 1} ${vmm}: ${
          PHASES.map((p) => `${p} ${r.phases[p].secs.toFixed(2)} s`).join(", ")
        }`,
      );
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
const mbs = (s: number) => s > 0 ? MIB / s : Infinity;
/** A VMM's rounds that reported. */
const done = (v: string) => results[v].filter((r): r is DdResult => r !== null);
/** Median MB/s of a VMM's phase over the rounds. */
const rate = (v: string, p: Phase) => median(done(v).map((r) => mbs(r.phases[p].secs)));
/** Per-round ratios against QEMU of the same round (rounds where both reported). */
const ratios = (v: string, p: Phase) =>
  results[v].flatMap((r, i) => {
    const q = results.qemu[i];
    return r && q ? [mbs(r.phases[p].secs) / mbs(q.phases[p].secs)] : [];
  });
console.log(
  `\nKVM: ${
    NESTED ? "nested (kvm_amd inside QEMU TCG)" : "hardware"
  }; dd of ${MIB} MiB, 1 MiB blocks; guest cache dropped before each phase; ${ROUNDS} round(s), medians\n`,
);
const others = VMMS.filter((v) => v !== "qemu");
console.log(
  `| guest dd | QEMU MB/s | ${
    others.map((v) => `${v} MB/s | ratio (per round)`).join(" | ")
  } | target (issue 14) |`,
);
console.log(`|---|---|${others.map(() => "---|---|").join("")}---|`);
for (const p of PHASES) {
  const q = rate("qemu", p);
  const cells = others.map((v) => {
    const rs = ratios(v, p);
    const each = rs.length > 1 ? ` (${rs.map((x) => x.toFixed(2)).join(", ")})` : "";
    return `${rate(v, p).toFixed(1)} | ${median(rs).toFixed(2)}x${each}`;
  });
  const what = p.startsWith("write") ? "conv=fsync" : "cold guest cache";
  // The first read and the first write are issue 14's rows; the second of each is context.
  const target = p === "read" || p === "write" ? ">= 1.0x" : "";
  console.log(`| ${p} (${what}) | ${q.toFixed(1)} | ${cells.join(" | ")} | ${target} |`);
}
console.log(
  "\n| VMM | round | phase | s | requests | KiB/req | ms/req (guest) | avg in flight | host CPU s by thread (threads) | AnonHuge MiB |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const v of VMMS) {
  results[v].forEach((res, i) => {
    if (res === null) {
      console.log(`| ${v} | ${i + 1} | hung or failed | | | | | | | |`);
      return;
    }
    for (const p of PHASES) {
      const r = res.phases[p];
      const cpu = [...r.cpu].filter(([, s]) => s >= 0.005).sort((a, b) => b[1] - a[1])
        .map(([k, s]) =>
          `${k}${(r.count.get(k) ?? 0) > 1 ? `×${r.count.get(k)}` : ""} ${s.toFixed(2)}`
        ).join(", ");
      console.log(
        `| ${v} | ${i + 1} | ${p} | ${r.secs.toFixed(2)} | ${r.ios} | ${r.kib.toFixed(0)} | ${
          r.msPerIo.toFixed(2)
        } | ${r.depth.toFixed(2)} | ${cpu} | ${(r.anonHugeKib / 1024).toFixed(0)} |`,
      );
    }
  });
}
console.log("\n| VMM | guest queue limits | virtio features |\n|---|---|---|");
for (const v of VMMS) {
  const r = done(v)[0];
  if (r) console.log(`| ${v} | ${r.queue} | ${r.features} |`);
}
if (STATS) {
  for (const v of others) {
    for (const p of PHASES) {
      const r = done(v)[0];
      if (!r) continue;
      console.log(`\n${v} ${p} (first round that reported):`);
      for (const l of r.phases[p].stats) console.log(`  ${l}`);
    }
  }
}
