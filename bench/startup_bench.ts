/**
 * The VMM's start-up as a user feels it, against peers measured in the same
 * run: `deno run --allow-ffi` of an empty module (the runtime's own start,
 * which no VMM on Deno can beat) and `qemu-system-x86_64 -version`.
 *
 * Rows, each a median of several spawns, wall time by this process's clock;
 * first the floor any VMM on Deno pays (an empty `deno run`, and an empty
 * Worker's start inside a process: every vCPU is one), then:
 * - `--version`: spawn -> exit of `deno run --allow-ffi main.ts --version`:
 *   the command's module graph alone (no KVM needed, measured on this host);
 * - demo guest: spawn -> first KVM_RUN, its first byte on stdout, exit (0);
 *   for this tree also with an empty module cache (sys/module_cache.ts: the
 *   first start after a change);
 * - Linux bzImage: spawn -> first KVM_RUN (from the start-up trace), and
 *   spawn -> its first byte on the serial console (then SIGTERM).
 *
 * The KVM rows run on hardware KVM directly, otherwise inside the nested KVM
 * host. `DENOVMM_STARTUP_BASE=DIR` (a checkout inside this repository, e.g.
 * `git archive main | tar -x -C .cache/startup_base`) measures that tree's
 * main.ts too, on the same rows, so a change shows as before/after in one run.
 *
 *     deno run -A bench/startup_bench.ts      (DENOVMM_STARTUP_ROUNDS=N)
 *
 * @module
 */
import { kvmRoute } from "../tests/nested/route.ts";
import { runNested } from "../tests/nested/run_nested.ts";
import { debianKernel } from "../tests/fixtures/debian.ts";

const REPO = new URL("..", import.meta.url).pathname;
const NESTED = Deno.env.get("DENOVMM_NESTED") === "1";
const ROUNDS = Number(Deno.env.get("DENOVMM_STARTUP_ROUNDS") ?? (NESTED ? 5 : 7));
const BASE = Deno.env.get("DENOVMM_STARTUP_BASE");
const TIMEOUT_MS = 120_000;
const FIRST_RUN = /first KVM_RUN after [\d.]+ ms \(epoch ([\d.]+);/;

if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  throw new RangeError(`Invalid DENOVMM_STARTUP_ROUNDS: ${ROUNDS}`);
}

/** A tree whose main.ts is measured: this one, and the base when given. */
interface Tree {
  label: string;
  dir: string;
}
const trees: Tree[] = [{ label: "this tree", dir: REPO }];
if (BASE) {
  const dir = BASE.startsWith("/") ? BASE : `${REPO}${BASE}`;
  Deno.statSync(`${dir}/main.ts`);
  trees.push({ label: `base (${BASE})`, dir });
}

/** What one spawn measured, ms after spawn; undefined where not seen. */
interface Spawned {
  firstOut?: number;
  firstRun?: number;
  exit: number;
  code: number;
}

async function spawn(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; killOnOutput?: boolean } = {},
): Promise<Spawned> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd ?? REPO,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
  const stderr = new Response(child.stderr).text();
  let firstOut: number | undefined;
  for await (const chunk of child.stdout) {
    if (firstOut === undefined && chunk.length > 0) {
      firstOut = performance.now() - t0;
      if (opts.killOnOutput) child.kill("SIGTERM");
    }
  }
  const { code } = await child.status;
  const exit = performance.now() - t0;
  clearTimeout(killer);
  const err = await stderr;
  const m = FIRST_RUN.exec(err);
  const firstRun = m ? Number(m[1]) - (performance.timeOrigin + t0) : undefined;
  // Progress on stderr: under the emulator a round takes minutes.
  console.error(
    `startup bench: ${cmd.split("/").pop()} ${args.slice(-1)} in ${opts.cwd ?? REPO}: ` +
      `exit ${code} after ${(exit / 1000).toFixed(2)} s`,
  );
  if (code !== 0 && !(opts.killOnOutput && code === 143)) {
    throw new Error(`${cmd} ${args.join(" ")}: exit code ${code}\n${err.slice(-2000)}`);
  }
  return { firstOut, firstRun, exit, code };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Runs every subject once to warm caches, then ROUNDS rounds of each in
 * turn (interleaved, so a drift in the host's load hits all alike);
 * medians per field, in the subjects' order.
 */
async function measureAll(
  subjects: (() => Promise<Spawned>)[],
): Promise<Record<string, number>[]> {
  for (const fn of subjects) await fn();
  const runs: Spawned[][] = subjects.map(() => []);
  for (let i = 0; i < ROUNDS; i++) {
    for (let j = 0; j < subjects.length; j++) runs[j].push(await subjects[j]());
  }
  return runs.map((rs) => {
    const out: Record<string, number> = {};
    for (const k of ["firstOut", "firstRun", "exit"] as const) {
      const xs = rs.map((r) => r[k]).filter((x): x is number => x !== undefined);
      if (xs.length === rs.length) out[k] = median(xs);
    }
    return out;
  });
}

function measure(fn: () => Promise<Spawned>): Promise<Record<string, number>> {
  return measureAll([fn]).then((r) => r[0]);
}

const deno = Deno.execPath();
const rows: { what: string; ms: number; peer?: number; target?: string }[] = [];
const emptyModule = await Deno.makeTempFile({ suffix: ".ts" });
Deno.writeTextFileSync(emptyModule, "export {};\n");
// The runtime's own cost of a thread: new Worker (an empty blob: module, as
// the VMM's Workers are served under --allow-ffi) -> its first message.
const emptyWorker = await Deno.makeTempFile({ suffix: ".ts" });
Deno.writeTextFileSync(
  emptyWorker,
  `const src = URL.createObjectURL(new Blob(["postMessage(0)"], { type: "text/javascript" }));
const t0 = performance.now();
const w = new Worker(src, { type: "module" });
w.onmessage = () => { console.log(JSON.stringify({ workerMs: performance.now() - t0 })); w.terminate(); };
`,
);

/** Median of ROUNDS in-process starts of an empty Worker (after one warm-up). */
async function emptyWorkerMs(): Promise<number> {
  const once = async () => {
    const out = await new Deno.Command(deno, {
      args: ["run", "--allow-ffi", emptyWorker],
      stdout: "piped",
      stderr: "inherit",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    }).output();
    return JSON.parse(new TextDecoder().decode(out.stdout)).workerMs as number;
  };
  await once();
  const xs: number[] = [];
  for (let i = 0; i < ROUNDS; i++) xs.push(await once());
  return median(xs);
}

function row(what: string, ms: number | undefined, peer?: number, target?: string): void {
  if (ms !== undefined) rows.push({ what, ms, peer, target });
}

function printRows(title: string): void {
  console.log(`\n${title} (median of ${ROUNDS}; ratio against the empty deno run)\n`);
  console.log("| what | ms | vs empty `deno run` | target (issue 14) |");
  console.log("|---|---|---|---|");
  for (const r of rows) {
    const ratio = r.peer ? `${(r.ms / r.peer).toFixed(2)}x` : "";
    console.log(`| ${r.what} | ${r.ms.toFixed(1)} | ${ratio} | ${r.target ?? ""} |`);
  }
  rows.length = 0;
}

async function baselines(): Promise<number> {
  const empty = (await measure(() => spawn(deno, ["run", "--allow-ffi", emptyModule]))).exit;
  row("floor: empty `deno run --allow-ffi`, spawn -> exit", empty, empty);
  row("floor: an empty Worker, `new Worker` -> its first message", await emptyWorkerMs(), empty);
  try {
    const q = await measure(() => spawn("qemu-system-x86_64", ["-version"]));
    row("`qemu-system-x86_64 -version`, spawn -> exit", q.exit, empty);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return empty;
}

if (!NESTED) {
  // Module loading alone needs no KVM: measured here, on this host.
  const empty = await baselines();
  const versions = await measureAll(
    trees.map((t) => () =>
      spawn(deno, ["run", "--allow-ffi", "main.ts", "--version"], { cwd: t.dir })
    ),
  );
  trees.forEach((t, i) =>
    row(`${t.label}: \`main.ts --version\`, spawn -> exit`, versions[i].exit, empty)
  );
  printRows(`Start-up without a guest, on this host (${Deno.build.target})`);
}

const kernel = (await debianKernel("amd64")).vmlinuz;
if (!NESTED && kvmRoute() === "nested") {
  console.log("\nNo hardware /dev/kvm here: the guest rows run inside the nested KVM host.");
  const env = BASE ? `DENOVMM_STARTUP_BASE=${BASE} ` : "";
  const r = await runNested(
    `${env}DENOVMM_STARTUP_ROUNDS=${ROUNDS} deno run --no-check -A bench/startup_bench.ts`,
    { stream: true, qemu: true, timeoutS: 300 + ROUNDS * 120 },
  );
  Deno.exit(r.code);
}

const empty = await baselines();
const denoDir = JSON.parse(
  new TextDecoder().decode(
    (await new Deno.Command(deno, { args: ["info", "--json"] }).output()).stdout,
  ),
).denoDir as string;
const traceEnv = { DENOVMM_TRACE_START: "1" };
const demoArgs = ["run", "--allow-ffi", "--allow-env=DENOVMM_TRACE_START", "main.ts"];
// deno-fmt-ignore
const linuxArgs = [
  ...demoArgs, "--kernel", kernel, "--append", "console=ttyS0 earlyprintk=ttyS0", "--memory", "256M",
];
const subjects: { label: string; kind: "demo" | "cold" | "linux"; fn: () => Promise<Spawned> }[] =
  [];
for (const t of trees) {
  subjects.push({
    label: t.label,
    kind: "demo",
    fn: () => spawn(deno, demoArgs, { cwd: t.dir, env: traceEnv }),
  });
  if (t.dir === REPO) {
    // The first start after a change transpiles the Workers' modules (sys/module_cache.ts).
    subjects.push({
      label: t.label,
      kind: "cold",
      fn: async () =>
        spawn(deno, demoArgs, {
          cwd: t.dir,
          // DENO_DIR kept: an empty XDG_CACHE_HOME would move Deno's own cache too.
          env: { ...traceEnv, DENO_DIR: denoDir, XDG_CACHE_HOME: await Deno.makeTempDir() },
        }),
    });
  }
  subjects.push({
    label: t.label,
    kind: "linux",
    fn: () => spawn(deno, linuxArgs, { cwd: t.dir, env: traceEnv, killOnOutput: true }),
  });
}
const results = await measureAll(subjects.map((x) => x.fn));
for (const kind of ["demo", "cold", "linux"] as const) {
  subjects.forEach((x, i) => {
    if (x.kind !== kind) return;
    const r = results[i];
    if (kind === "demo") {
      // The targets are for hardware KVM; nested, the rows show the trend.
      row(`${x.label}: demo guest, spawn -> first KVM_RUN`, r.firstRun, empty, "<= 40 ms");
      row(`${x.label}: demo guest, spawn -> first output`, r.firstOut, empty);
      row(`${x.label}: demo guest, spawn -> exit`, r.exit, empty, "<= 3x");
    } else if (kind === "cold") {
      row(`${x.label}: demo guest, empty module cache, spawn -> first KVM_RUN`, r.firstRun, empty);
      row(`${x.label}: demo guest, empty module cache, spawn -> exit`, r.exit, empty);
    } else {
      row(`${x.label}: Linux bzImage, spawn -> first KVM_RUN`, r.firstRun, empty);
      row(`${x.label}: Linux bzImage, spawn -> first console byte`, r.firstOut, empty);
    }
  });
}
printRows(
  NESTED ? "Start-up with a guest, nested KVM host" : "Start-up with a guest, hardware KVM",
);
