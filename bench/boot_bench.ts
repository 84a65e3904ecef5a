/**
 * Linux boot to /init: denovmm against QEMU (`-enable-kvm -cpu host`, same
 * bzImage, initrd, command line, memory and vCPUs) on the same KVM in the same
 * run, as a ratio of medians (target <= 0.8x: direct boot skips firmware).
 * Also the VMM's start-up (process start -> first KVM_RUN, target <= 40 ms)
 * and its RSS beyond guest RAM at /init (target <= 45 MiB), next to
 * Firecracker's published figures (8 ms of CPU, 5 MiB).
 *
 * Runs on hardware KVM (kvm_intel/kvm_amd) directly, otherwise inside the
 * nested KVM host, whose L1 image then carries QEMU too.
 *
 *     deno run -A bench/boot_bench.ts        (DENOVMM_BOOT_ROUNDS=N to change rounds)
 *
 * `DENOVMM_BOOT_BASE=.cache/boot_base` (a `git archive` of another commit
 * inside the repository, so the nested host sees it too, with a
 * `node_modules` link) boots that tree as well in every round, for a before /
 * after in one run.
 *
 * `DENOVMM_BOOT_ELF=1` boots the same kernel as a vmlinux ELF (through its
 * PVH entry) under both VMMs too: no decompression in the guest, which
 * takes seconds of a nested boot.
 *
 * `DENOVMM_BOOT_KERNEL=cloud-amd64` boots Debian's other stock kernel (the
 * small cloud flavour) instead of the generic one.
 *
 * `DENOVMM_BOOT_COLD=1` adds the first boot of a kernel the VMM has not
 * seen, at 1 vCPU: denovmm with its kernel cache emptied before each boot
 * (`cold`: the guest decompresses it while the VMM unpacks it for the
 * cache), and with `DENOVMM_KERNEL_UNPACK=0` (`guest`: the guest
 * decompresses it, no cache, as under QEMU); the other rows boot a kernel
 * the warm-up put in the cache.
 *
 * Nested, every finished boot is logged (`.cache/boot_bench/*.jsonl`, or
 * `DENOVMM_BOOT_LOG`) and a nested host that hangs (seen with 2 L1 CPUs) is
 * replaced by a fresh one that goes on from the log, up to
 * `DENOVMM_BOOT_RESUMES` times (default 2): a hang loses one boot, not the run.
 *
 * Where the host lets it (root: the nested host does), every boot's exits
 * are counted by the host kernel too (bench/_kvm_exit_trace.ts): all of
 * them, by hardware reason, and those that reached the VMM.
 *
 * @module
 */
import { kvmRoute } from "../tests/nested/route.ts";
import { runNested } from "../tests/nested/run_nested.ts";
import { L1_QEMU_BINARY } from "../tests/nested/l1_image.ts";
import { debianKernel, ensureAptPackages } from "../tests/fixtures/debian.ts";
import { buildTestInitramfs, INIT_MARKER } from "../tests/fixtures/initramfs.ts";
import { vmlinuxOf } from "../tests/fixtures/vmlinux.ts";
import { cpuDelta, threadCpu } from "./_thread_cpu.ts";
import { type ExitCounts, KvmExitTrace } from "./_kvm_exit_trace.ts";
import { appendBootLog, readBootLog } from "./_boot_log.ts";

const REPO = new URL("..", import.meta.url).pathname;
const NESTED = Deno.env.get("DENOVMM_NESTED") === "1";
// Nested, one boot takes 25-60 s (under the emulator, and more when the host is shared).
const ROUNDS = Number(Deno.env.get("DENOVMM_BOOT_ROUNDS") ?? (NESTED ? 1 : 5));
const CPUS = [1, 2];
const MEMORY_MIB = 256;
const CMDLINE = "console=ttyS0 quiet";
const BOOT_TIMEOUT_MS = 240_000;
// /proc/uptime has two decimals: the number is whole without a space after
// it (a 2-vCPU guest's kernel may print its power-off inside the line).
const MARKER = new RegExp(`${INIT_MARKER} uname=\\S+ nproc=(\\d+) uptime=(\\d+\\.\\d\\d)`);
const TRACE = new RegExp(
  String.raw`first KVM_RUN after ([\d.]+) ms \(epoch ([\d.]+); ` +
    String.raw`Machine.create at ([\d.]+) ms, vCPU threads ready at ([\d.]+) ms\)`,
);

const BASE = Deno.env.get("DENOVMM_BOOT_BASE");
const ELF = Deno.env.get("DENOVMM_BOOT_ELF") === "1";
const COLD = Deno.env.get("DENOVMM_BOOT_COLD") === "1";
const FLAVOUR = Deno.env.get("DENOVMM_BOOT_KERNEL") ?? "amd64";
const BASE_DIR = BASE ? new URL(BASE, `file://${REPO}`).pathname : undefined;

if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  throw new RangeError(`Invalid DENOVMM_BOOT_ROUNDS: ${ROUNDS}`);
}

// Fixtures are made ready on the host (apt is unreachable inside the nested host).
if (FLAVOUR !== "amd64" && FLAVOUR !== "cloud-amd64") {
  throw new RangeError(`Invalid DENOVMM_BOOT_KERNEL: ${FLAVOUR} (amd64 or cloud-amd64)`);
}
const kernel = (await debianKernel(FLAVOUR)).vmlinuz;
const initrd = await buildTestInitramfs();
const vmlinux = ELF ? await vmlinuxOf(kernel) : "";

if (kvmRoute() === "nested") {
  console.log("No hardware /dev/kvm here: running this benchmark inside the nested KVM host.");
  // Kill QEMU rather than orphan it when interrupted.
  const abort = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => abort.abort());
  }
  // Inside the repository, which the nested host shares at the same path.
  const log = Deno.env.get("DENOVMM_BOOT_LOG") ??
    `${REPO}.cache/boot_bench/boot-${Date.now()}.jsonl`;
  Deno.mkdirSync(log.replace(/\/[^/]*$/, ""), { recursive: true });
  const resumes = Number(Deno.env.get("DENOVMM_BOOT_RESUMES") ?? 2);
  for (let attempt = 0;; attempt++) {
    const before = readBootLog(log).boots.size;
    try {
      const r = await runNested(
        `DENOVMM_BOOT_ROUNDS=${ROUNDS} DENOVMM_BOOT_LOG=${log} ` +
          `${BASE ? `DENOVMM_BOOT_BASE=${BASE} ` : ""}` +
          `${ELF ? "DENOVMM_BOOT_ELF=1 " : ""}${COLD ? "DENOVMM_BOOT_COLD=1 " : ""}` +
          `DENOVMM_BOOT_KERNEL=${FLAVOUR} ` +
          `deno run --no-check -A bench/boot_bench.ts`,
        {
          stream: true,
          qemu: true,
          timeoutS: 300 + ROUNDS * (300 + (BASE ? 150 : 0) + (ELF ? 300 : 0) + (COLD ? 150 : 0)),
          // Every boot prints a line: a run silent for longer than a boot's own
          // limit is a hung nested host, reported with its CPUs' RIPs.
          idleTimeoutS: BOOT_TIMEOUT_MS / 1000 + 120,
          signal: abort.signal,
        },
      );
      Deno.exit(r.code);
    } catch (e) {
      // A hung host: go on in a fresh one while each host adds boots.
      const after = readBootLog(log).boots.size;
      if (abort.signal.aborted || attempt >= resumes || after <= before) throw e;
      console.error(
        `boot bench: ${(e as Error).message.split("\n")[0]}; ` +
          `${after} boots logged in ${log}, going on in a fresh nested host`,
      );
    }
  }
}
if (!NESTED) await ensureAptPackages(["qemu-system-x86"]);
console.error(`boot bench: ${ROUNDS} rounds, kernel ${kernel}, initrd ${initrd}`);
const exitTrace = KvmExitTrace.open();
if (typeof exitTrace === "string") console.error(`boot bench: exits not counted: ${exitTrace}`);

/** What one boot measured. */
interface Boot {
  /** Spawn -> the /init marker line, by this process's clock. */
  ms: number;
  /**
   * The guest kernel's own uptime when /init printed the marker: its boot,
   * from its clock's start to /init, by the guest's clock. `ms` minus this is
   * what came before the kernel ran (the VMM's start, QEMU's firmware).
   */
  guestMs: number;
  /** /proc/<pid>/status fields (kB) read when the marker arrived. */
  status: Record<string, number>;
  /**
   * CPU seconds by thread role while the guest kernel booted: from the
   * sample nearest after its clock started (spawn + ms - guestMs; samples
   * every CPU_SAMPLE_MS) to the marker.
   */
  guestCpu: Map<string, number>;
  /** denovmm only: process start (its timeOrigin) -> first KVM_RUN. */
  firstRunMs?: number;
  /** denovmm only: spawn -> first KVM_RUN, by this process's clock. */
  spawnToFirstRunMs?: number;
  /** denovmm only: process start -> Machine.create began. */
  createMs?: number;
  /** denovmm only: process start -> vCPU threads ready. */
  readyMs?: number;
  /** denovmm only: the start-up/shutdown trace, phase -> ms since process start. */
  phases?: Map<string, number>;
  /** The host kernel's count of the guest's exits, spawn -> process exit (see exitTrace). */
  exits?: ExitCounts;
}

/** How often a boot samples its VMM's threads' CPU time (/proc/PID/task). */
const CPU_SAMPLE_MS = 250;

const PHASE = /^denovmm: trace\s+(-?[\d.]+) ms \(\+\s*[\d.]+\) (.+)$/gm;

/** Rss (kB) of the process's guest RAM: its mappings exactly MEMORY_MIB in size. */
function guestRamRss(pid: number): number {
  let rss = 0;
  try {
    const smaps = Deno.readTextFileSync(`/proc/${pid}/smaps`);
    for (const b of smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
      if (Number(/^Size:\s+(\d+) kB/m.exec(b)?.[1]) === MEMORY_MIB * 1024) {
        rss += Number(/^Rss:\s+(\d+) kB/m.exec(b)?.[1] ?? 0);
      }
    }
  } catch {
    return NaN;
  }
  return rss;
}

function readStatus(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  out.GuestRamRss = guestRamRss(pid);
  try {
    for (const line of Deno.readTextFileSync(`/proc/${pid}/status`).split("\n")) {
      const m = /^(\w+):\s+(\d+) kB$/.exec(line);
      if (m) out[m[1]] = Number(m[2]);
    }
  } catch {
    // The process is gone already; the caller reports the missing figures.
  }
  return out;
}

function tail(s: string, n = 2000): string {
  return s.length > n ? s.slice(-n) : s;
}

async function boot(
  cmd: string,
  args: string[],
  opts: { cpus: number; env?: Record<string, string>; cwd?: string },
): Promise<Boot> {
  if (typeof exitTrace !== "string") exitTrace.start();
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd ?? REPO,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = setTimeout(() => child.kill("SIGKILL"), BOOT_TIMEOUT_MS);
  // Where the VMM's threads spend CPU while the guest boots (on a host with
  // as many CPUs as vCPUs, any other busy thread takes time from a vCPU).
  const cpuSamples: { ms: number; cpu: Map<string, number> | null }[] = [];
  const sampler = setInterval(
    () => cpuSamples.push({ ms: performance.now() - t0, cpu: threadCpu(child.pid) }),
    CPU_SAMPLE_MS,
  );
  const stderr = new Response(child.stderr).text();
  const dec = new TextDecoder();
  let out = "";
  let ms: number | undefined;
  let status: Record<string, number> = {};
  let nproc = "";
  let guestMs = NaN;
  for await (const chunk of child.stdout) {
    out += dec.decode(chunk, { stream: true });
    if (ms !== undefined) continue;
    const m = MARKER.exec(out);
    if (m) {
      ms = performance.now() - t0;
      clearInterval(sampler);
      cpuSamples.push({ ms, cpu: threadCpu(child.pid) });
      status = readStatus(child.pid);
      nproc = m[1];
      guestMs = Number(m[2]) * 1000;
    }
  }
  const { code } = await child.status;
  const exits = typeof exitTrace !== "string" ? exitTrace.stop() : undefined;
  clearTimeout(killer);
  clearInterval(sampler);
  const err = await stderr;
  const what = `${cmd.split("/").pop()} ${opts.cpus} vCPU`;
  if (ms === undefined) {
    throw new Error(`${what}: no ${INIT_MARKER} line (exit ${code})\n${tail(out)}\n${tail(err)}`);
  }
  if (nproc !== String(opts.cpus)) throw new Error(`${what}: guest saw nproc=${nproc}`);
  if (code !== 0) throw new Error(`${what}: exit code ${code}\n${tail(err)}`);
  const kernelStart = ms - guestMs;
  const from = cpuSamples.find((x) => x.ms >= kernelStart)?.cpu ?? null;
  const guestCpu = cpuDelta(from, cpuSamples[cpuSamples.length - 1].cpu);
  const b: Boot = { ms, guestMs, status, guestCpu, exits };
  const t = TRACE.exec(err);
  if (t) {
    b.firstRunMs = Number(t[1]);
    b.spawnToFirstRunMs = Number(t[2]) - (performance.timeOrigin + t0);
    b.createMs = Number(t[3]);
    b.readyMs = Number(t[4]);
  }
  const phases = new Map<string, number>();
  for (const m of err.matchAll(PHASE)) phases.set(m[2], Number(m[1]));
  if (phases.size > 0) b.phases = phases;
  return b;
}

const qemuBin = await Deno.stat(L1_QEMU_BINARY).then(() => L1_QEMU_BINARY)
  .catch(() => "qemu-system-x86_64");

function qemu(cpus: number, image = kernel): Promise<Boot> {
  // deno-fmt-ignore
  return boot(qemuBin, [
    "-enable-kvm", "-cpu", "host", "-nographic", "-no-reboot",
    "-kernel", image, "-initrd", initrd, "-append", CMDLINE,
    "-m", String(MEMORY_MIB), "-smp", String(cpus),
    // Names its threads (CPU n/KVM, worker), so the CPU table splits them by role.
    "-name", "debug-threads=on",
  ], { cpus });
}

function denovmm(
  cpus: number,
  cwd = REPO,
  image = kernel,
  env: Record<string, string> = {},
): Promise<Boot> {
  // deno-fmt-ignore
  return boot(Deno.execPath(), [
    "run", "--no-check", "--allow-ffi", "--allow-env=DENOVMM_TRACE_START", "main.ts",
    "--kernel", image, "--initrd", initrd, "--append", CMDLINE,
    "--cpus", String(cpus), "--memory", `${MEMORY_MIB}M`,
  ], { cpus, env: { DENOVMM_TRACE_START: "1", ...env }, cwd });
}

/**
 * The tree of DENOVMM_BOOT_BASE, booted the same way, with a cache of its
 * own: the two trees' cache formats may differ, and sharing one would make
 * each boot unpack the kernel again.
 */
function base(cpus: number): Promise<Boot> {
  return denovmm(cpus, BASE_DIR, kernel, { XDG_CACHE_HOME: `${BASE_DIR}/.cache/xdg` });
}

/**
 * A first boot of the kernel: a cache of its own (in HOME: the nested
 * host's is its tmpfs) with the kernels' part emptied, the modules' kept.
 */
function cold(cpus: number): Promise<Boot> {
  const xdg = `${Deno.env.get("HOME") ?? "/tmp"}/.cache/denovmm-boot-bench-cold`;
  try {
    Deno.removeSync(`${xdg}/denovmm/kernels`, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return denovmm(cpus, REPO, kernel, { XDG_CACHE_HOME: xdg });
}

/** The guest decompresses its bzImage itself, as under QEMU. */
function guestUnpacks(cpus: number): Promise<Boot> {
  return denovmm(cpus, REPO, kernel, { DENOVMM_KERNEL_UNPACK: "0" });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function kvmKind(): string {
  if (NESTED) return "nested KVM (kvm_amd in a Debian 6.1 L1 under QEMU TCG, 2 L1 vCPUs)";
  const has = (m: string) => Deno.statSync(`/sys/module/${m}`).isDirectory;
  try {
    if (has("kvm_intel")) return "hardware KVM (kvm_intel)";
  } catch {
    // not Intel
  }
  return "hardware KVM (kvm_amd)";
}

/**
 * The runtime's own start, the floor under the VMM's start-up: an empty
 * `deno run` (spawn -> exit) and an empty Worker's start in a process (new
 * Worker -> its first message; each vCPU is a Worker). Medians of 3.
 */
async function floor(): Promise<{ denoRunMs: number; workerMs: number }> {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-floor-" });
  try {
    Deno.writeTextFileSync(`${dir}/empty.ts`, "export {};\n");
    Deno.writeTextFileSync(
      `${dir}/worker.ts`,
      `const src = URL.createObjectURL(new Blob(["postMessage(0)"], { type: "text/javascript" }));
const t0 = performance.now();
const w = new Worker(src, { type: "module" });
w.onmessage = () => { console.log(performance.now() - t0); w.terminate(); };
`,
    );
    const run = async (file: string) => {
      const t0 = performance.now();
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-ffi", `${dir}/${file}`],
        stdout: "piped",
      }).output();
      return { wall: performance.now() - t0, text: new TextDecoder().decode(out.stdout) };
    };
    await run("empty.ts");
    await run("worker.ts");
    const deno: number[] = [], worker: number[] = [];
    for (let i = 0; i < 3; i++) {
      deno.push((await run("empty.ts")).wall);
      worker.push(Number((await run("worker.ts")).text));
    }
    return { denoRunMs: median(deno), workerMs: median(worker) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// Warm-up, discarded: Deno's transpile cache, page cache for both binaries.
// Nested, QEMU's binary already sits in the L1's RAM (initramfs): only denovmm warms up.
const warmUps: [string, (cpus: number) => Promise<Boot>][] = [["denovmm", denovmm]];
if (!NESTED) warmUps.unshift(["qemu", qemu]);
if (BASE_DIR) warmUps.push(["base", base]);
if (COLD) warmUps.push(["cold", cold]);
for (const [name, fn] of warmUps) {
  const b = await fn(1);
  console.error(`warm-up: ${name}/1 vCPU ${(b.ms / 1000).toFixed(2)} s`);
}

const LOG = Deno.env.get("DENOVMM_BOOT_LOG");
const logged = readBootLog<Boot>(LOG);
const floorMs = logged.floor ?? await floor();
if (LOG && !logged.floor) appendBootLog(LOG, { floor: floorMs });
const results = new Map<string, Boot[]>();
for (let r = 0; r < ROUNDS; r++) {
  for (const cpus of CPUS) {
    const vmms: [string, (cpus: number) => Promise<Boot>][] = [["qemu", qemu], [
      "denovmm",
      denovmm,
    ]];
    if (BASE_DIR) vmms.push(["base", base]);
    if (COLD && cpus === 1) vmms.push(["cold", cold], ["guest", guestUnpacks]);
    if (ELF) {
      vmms.push(["qemu-elf", (c) => qemu(c, vmlinux)], [
        "denovmm-elf",
        (c) => denovmm(c, REPO, vmlinux),
      ]);
    }
    // Every other round in reverse order, so neither VMM always follows the other.
    if (r % 2) vmms.reverse();
    for (const [name, fn] of vmms) {
      const key = `${name}/${cpus}`;
      const done = logged.boots.get(`${r}:${key}`);
      const b = done ?? await bootOnceMore(key, () => fn(cpus));
      if (LOG && !done) appendBootLog(LOG, { round: r, key, boot: b });
      if (!results.has(key)) results.set(key, []);
      results.get(key)!.push(b);
      console.error(
        `round ${r + 1}: ${key} vCPU ${(b.ms / 1000).toFixed(2)} s${done ? " (logged)" : ""}`,
      );
    }
  }
}

/**
 * A boot, booted again once when its marker line did not come: a guest that
 * powers off right after writing it can lose the line's end in the UART
 * (seen once under QEMU, 2 vCPUs: "DENOVMM-INIT uname=..." and no more),
 * which would otherwise end the whole bench.
 */
async function bootOnceMore(key: string, boot: () => Promise<Boot>): Promise<Boot> {
  try {
    return await boot();
  } catch (e) {
    if (!(e instanceof Error && e.message.includes(`no ${INIT_MARKER} line`))) throw e;
    console.error(`${key}: ${e.message.split("\n")[0]}; booting it once more`);
    return await boot();
  }
}

const s = (ms: number) => (ms / 1000).toFixed(2);
const mib = (kb: number) => (kb / 1024).toFixed(1);
console.log(
  `\nKVM: ${kvmKind()}. Guest: Debian ${kernel.split("vmlinuz-").pop()} bzImage + busybox ` +
    `initramfs, "${CMDLINE}", ${MEMORY_MIB} MiB. Median of ${ROUNDS} rounds (after a warm-up).\n`,
);
console.log("| vCPUs | QEMU -enable-kvm (s) | denovmm (s) | ratio | runs QEMU / denovmm (s) |");
console.log("|---|---|---|---|---|");
for (const cpus of CPUS) {
  const q = results.get(`qemu/${cpus}`)!.map((b) => b.ms);
  const d = results.get(`denovmm/${cpus}`)!.map((b) => b.ms);
  console.log(
    `| ${cpus} | ${s(median(q))} | ${s(median(d))} | ${(median(d) / median(q)).toFixed(2)}x | ` +
      `${q.map(s).join(", ")} / ${d.map(s).join(", ")} |`,
  );
}
if (BASE_DIR) {
  console.log(`\nThe same for the tree in ${BASE} (before), booted in the same rounds:\n`);
  console.log("| vCPUs | base (s) | ratio vs QEMU | runs (s) |");
  console.log("|---|---|---|---|");
  for (const cpus of CPUS) {
    const q = results.get(`qemu/${cpus}`)!.map((b) => b.ms);
    const b = results.get(`base/${cpus}`)!.map((x) => x.ms);
    console.log(
      `| ${cpus} | ${s(median(b))} | ${(median(b) / median(q)).toFixed(2)}x | ${
        b.map(s).join(", ")
      } |`,
    );
  }
}
if (COLD) {
  console.log(
    "\nThe first boot of a kernel the VMM has not seen (1 vCPU): denovmm with its kernel " +
      "cache emptied (`cold`: the guest decompresses it while the VMM unpacks it for the " +
      "cache), with DENOVMM_KERNEL_UNPACK=0 (`guest`: the guest decompresses it, no cache), " +
      "and from the cache (`denovmm`), against QEMU:\n",
  );
  console.log("| VMM | boot (s) | ratio vs QEMU | runs (s) |");
  console.log("|---|---|---|---|");
  const q = results.get("qemu/1")!.map((b) => b.ms);
  for (const vmm of ["denovmm", "cold", "guest"]) {
    const d = results.get(`${vmm}/1`)!.map((b) => b.ms);
    console.log(
      `| ${vmm} | ${s(median(d))} | ${(median(d) / median(q)).toFixed(2)}x | ${
        d.map(s).join(", ")
      } |`,
    );
  }
}
if (ELF) {
  console.log(
    "\nThe same kernel as a vmlinux ELF (its PVH entry: no decompression in the guest):\n",
  );
  console.log(
    "| vCPUs | QEMU (s) | denovmm (s) | ratio | denovmm vmlinux vs QEMU bzImage | runs (s) |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const cpus of CPUS) {
    const q = results.get(`qemu-elf/${cpus}`)!.map((b) => b.ms);
    const d = results.get(`denovmm-elf/${cpus}`)!.map((b) => b.ms);
    const qb = results.get(`qemu/${cpus}`)!.map((b) => b.ms);
    console.log(
      `| ${cpus} | ${s(median(q))} | ${s(median(d))} | ${(median(d) / median(q)).toFixed(2)}x | ${
        (median(d) / median(qb)).toFixed(2)
      }x | ${q.map(s).join(", ")} / ${d.map(s).join(", ")} |`,
    );
  }
}
console.log("\nTime: spawn of the VMM process -> the `DENOVMM-INIT` line on its serial console.");
console.log("Target: <= 0.8x.\n");

// Where a boot's time goes: the guest kernel's part by its own clock, and
// what came before it (each VMM's start; for QEMU also SeaBIOS and its
// linuxboot option ROM; for denovmm Deno's start, modules and Workers).
console.log(
  "| vCPUs | VMM | spawn -> /init (s) | guest kernel: its uptime at /init (s) | " +
    "before the kernel: the difference (s) |",
);
console.log("|---|---|---|---|---|");
for (const cpus of CPUS) {
  const vmms = [
    "qemu",
    "denovmm",
    ...BASE_DIR ? ["base"] : [],
    ...COLD ? ["cold", "guest"] : [],
    ...ELF ? ["qemu-elf", "denovmm-elf"] : [],
  ];
  for (const vmm of vmms) {
    const bs = results.get(`${vmm}/${cpus}`);
    if (!bs) continue;
    console.log(
      `| ${cpus} | ${vmm} | ${s(median(bs.map((b) => b.ms)))} | ${
        s(median(bs.map((b) => b.guestMs)))
      } | ${s(median(bs.map((b) => b.ms - b.guestMs)))} |`,
    );
  }
}
console.log(
  "\nThe guest's uptime starts when its kernel's clock does (early in its start-up), so the " +
    "last column holds everything before that: the VMM process's start and set-up, loading " +
    "the kernel, firmware where there is one, a bzImage's decompression of itself, and the " +
    "kernel's first steps.\n",
);

// CPU by thread role while the guest kernel booted, medians per role.
const roleSet = new Set<string>();
for (const bs of results.values()) {
  for (const b of bs) for (const r of b.guestCpu.keys()) roleSet.add(r);
}
const cols = [...results.keys()].sort();
console.log(
  `CPU seconds by thread role while the guest kernel booted (its uptime window before /init; ` +
    `samples every ${CPU_SAMPLE_MS} ms), medians; the host has ${navigator.hardwareConcurrency} CPUs\n`,
);
console.log(`| thread role | ${cols.join(" | ")} |`);
console.log(`|---|${cols.map(() => "---").join("|")}|`);
const cpuCell = (bs: Boot[], role: string) => {
  const xs = bs.map((b) => b.guestCpu.get(role)).filter((x) => x !== undefined);
  return xs.length ? median(xs).toFixed(2) : "";
};
for (const role of [...roleSet].sort()) {
  console.log(`| ${role} | ${cols.map((k) => cpuCell(results.get(k)!, role)).join(" | ")} |`);
}
const guestSpan = (bs: Boot[]) => s(median(bs.map((b) => b.guestMs)));
console.log(
  `| (guest kernel's boot, s) | ${cols.map((k) => guestSpan(results.get(k)!)).join(" | ")} |`,
);
console.log();

printExits();

const all = [...results.entries()].filter(([k]) => k.startsWith("denovmm/")).flatMap(([, v]) => v);
const firstRun = all.map((b) => b.firstRunMs).filter((x) => x !== undefined);
const spawnFirst = all.map((b) => b.spawnToFirstRunMs).filter((x) => x !== undefined);
const field = (bs: Boot[], f: string) => median(bs.map((b) => b.status[f] ?? NaN));
const rss = field(all, "VmRSS");
const guestRam = field(all, "GuestRamRss");
const beyondOf = (b: Boot) => (b.status.VmRSS ?? NaN) - (b.status.GuestRamRss ?? NaN);
const beyond = median(all.map(beyondOf));
const qemuAll = [...results.entries()].filter(([k]) => k.startsWith("qemu/")).flatMap(([, v]) => v);
console.log(
  "| denovmm start-up and memory (median, 1 and 2 vCPUs) | value | target | Firecracker |",
);
console.log("|---|---|---|---|");
if (firstRun.length) {
  const fr = median(firstRun);
  console.log(
    `| process start (performance.timeOrigin) -> first KVM_RUN | ${fr.toFixed(1)} ms | ` +
      `<= 40 ms (${(fr / 40).toFixed(1)}x) | 8 ms CPU (${(fr / 8).toFixed(0)}x) |`,
  );
  console.log(
    `| spawn (this process's clock) -> first KVM_RUN | ${median(spawnFirst).toFixed(1)} ms | | |`,
  );
  console.log(
    `| floor: empty \`deno run --allow-ffi\`, spawn -> exit | ${
      floorMs.denoRunMs.toFixed(1)
    } ms | | |`,
  );
  console.log(
    `| floor: an empty Worker, \`new Worker\` -> its first message | ${
      floorMs.workerMs.toFixed(1)
    } ms | | |`,
  );
  const phase = (f: (b: Boot) => number) => median(all.map(f)).toFixed(1);
  console.log(
    `| of which: process start -> Machine.create (Deno, modules, reading kernel+initrd) | ${
      phase((b) => b.createMs ?? NaN)
    } ms | | |`,
  );
  console.log(
    `| Machine.create -> vCPU threads ready (VM, RAM, loading, Workers and devices) | ${
      phase((b) => (b.readyMs ?? NaN) - (b.createMs ?? NaN))
    } ms | | |`,
  );
  console.log(
    `| vCPU threads ready -> first KVM_RUN | ${
      phase((b) => (b.firstRunMs ?? NaN) - (b.readyMs ?? NaN))
    } ms | | |`,
  );
} else {
  console.log("| process start -> first KVM_RUN | no trace line (DENOVMM_TRACE_START) | | |");
}
console.log(
  `| RSS beyond guest RAM at /init (VmRSS - Rss of the guest RAM mapping) | ${mib(beyond)} MiB | ` +
    `<= 45 MiB (${(beyond / 1024 / 45).toFixed(2)}x) | 5 MiB (${
      (beyond / 1024 / 5).toFixed(0)
    }x) |`,
);
console.log(
  `| VmRSS / RssAnon / RssFile / guest RAM touched | ${mib(rss)} / ${
    mib(field(all, "RssAnon"))
  } / ${mib(field(all, "RssFile"))} / ${mib(guestRam)} MiB | | |`,
);
console.log(
  `| QEMU at /init, for reference: VmRSS / beyond guest RAM | ${mib(field(qemuAll, "VmRSS"))} / ${
    mib(median(qemuAll.map(beyondOf)))
  } MiB | | |`,
);
console.log(
  "\nFirecracker's figures are its published specification (CPU time, not wall time); " +
    "the start-up figure here is wall time and includes Deno's own start and module loading.",
);

// Where the time goes: the VMM's own timeline (DENOVMM_TRACE_START), per vCPU count.
for (const cpus of CPUS) {
  const runs = results.get(`denovmm/${cpus}`)!.filter((b) => b.phases);
  if (runs.length === 0) continue;
  const order = [...runs[0].phases!.entries()].sort((a, b) => a[1] - b[1]).map(([p]) => p);
  console.log(
    `\n| denovmm timeline, ${cpus} vCPU(s), median of ${runs.length} | ms since Deno's time origin (the exec before it) | + ms |`,
  );
  console.log("|---|---|---|");
  const values = order.map((p) => median(runs.map((b) => b.phases!.get(p) ?? NaN)));
  let prev = Math.min(0, values[0] ?? 0);
  order.forEach((p, i) => {
    console.log(`| ${p} | ${values[i].toFixed(1)} | ${(values[i] - prev).toFixed(1)} |`);
    prev = values[i];
  });
}
console.log(
  '\nThe guest runs between the first KVM_RUN and "VM stopped"; "exit" is the last line ' +
    "of main.ts before Deno.exit.",
);

/**
 * The guest's exits by reason, per VMM (medians): whether the VMMs' guests
 * took the same exits, and how many reached the VMM's own code.
 */
function printExits(): void {
  if (typeof exitTrace === "string") {
    console.log(`Exits by reason: not counted here (${exitTrace}).\n`);
    return;
  }
  const reasons = new Map<string, number>();
  for (const bs of results.values()) {
    for (const b of bs) {
      for (const [r, n] of b.exits?.byReason ?? []) {
        reasons.set(r, (reasons.get(r) ?? 0) + n);
      }
    }
  }
  const toVmm = new Set<string>();
  for (const bs of results.values()) {
    for (const b of bs) {
      for (const r of b.exits?.toVmm.keys() ?? []) toVmm.add(r);
    }
  }
  const cell = (k: string, f: (e: ExitCounts) => number) => {
    const xs = results.get(k)!.map((b) => (b.exits ? f(b.exits) : NaN)).filter((x) => !isNaN(x));
    return xs.length ? String(Math.round(median(xs))) : "";
  };
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  console.log(
    "Guest exits from spawn to the VMM's exit, counted by the host kernel (kvm_exit, " +
      "kvm_userspace_exit and kvm_pio hist triggers), medians\n",
  );
  console.log(`| exits | ${cols.join(" | ")} |`);
  console.log(`|---|${cols.map(() => "---").join("|")}|`);
  console.log(`| all | ${cols.map((k) => cell(k, (e) => sum(e.byReason))).join(" | ")} |`);
  for (const [r] of [...reasons].sort((a, b) => b[1] - a[1])) {
    console.log(
      `| ${r} | ${cols.map((k) => cell(k, (e) => e.byReason.get(r) ?? 0)).join(" | ")} |`,
    );
  }
  console.log(
    `| to the VMM (KVM_RUN returned) | ${
      cols.map((k) => cell(k, (e) => sum(e.toVmm))).join(" | ")
    } |`,
  );
  for (const r of [...toVmm].sort()) {
    console.log(
      `| to the VMM: ${r} | ${cols.map((k) => cell(k, (e) => e.toVmm.get(r) ?? 0)).join(" | ")} |`,
    );
  }
  console.log(
    `| of which PCI configuration ports (0xcf8, 0xcfc) | ${
      cols.map((k) => cell(k, (e) => e.pciConfig)).join(" | ")
    } |`,
  );
  console.log(
    "\nQEMU's count includes its firmware (SeaBIOS, the linuxboot option ROM). Nearly all " +
      "port exits are PCI configuration reads through 0xcf8/0xcfc, two exits each unless " +
      "CONFIG_ADDRESS writes are coalesced: on AMD family 0xf-0x11 (what the nested host's " +
      "emulated CPU reports) Linux searches every slot of all 256 buses for an AGP bridge, " +
      "twice (arch/x86/kernel/aperture_64.c), about 16,400 reads.\n",
  );
}
