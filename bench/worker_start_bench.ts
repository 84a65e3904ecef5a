/**
 * A Worker's start as the VMM makes it under `--allow-ffi` alone: the time
 * from `new Worker(url)` to the Worker's first message, for the vCPU
 * thread's prestarted entry (vcpu/worker.ts, the KVM backend and the device
 * modules) and an aio thread, served two ways in the same run:
 *
 * - **bundle**: one `blob:` module per entry (sys/module_bundle.ts), its
 *   functions compiled lazily;
 * - **blob**: the graph as separate `blob:` modules (`DENOVMM_NO_BUNDLE=1`,
 *   the way before bundles), one module per file.
 *
 * Both are compiled from source at each start (a `blob:` URL is new in
 * every process, and Deno keys its code cache by URL). Each against an empty Worker's start (the floor: the isolate alone).
 * Warm: the same DENO_DIR and module cache every round (what every start
 * after the first sees); cold: a fresh DENO_DIR and module cache (the first
 * start after an install or a change). Then Deno's code cache
 * (`DENO_DIR/v8_code_cache_v2*`) over 10 starts each way: each start adds
 * rows no start reads again, one small row for the bundle, one per module
 * for the blob modules.
 *
 * Each start is its own process (`deno run --allow-ffi
 * bench/_worker_start_probe.ts`); rounds interleave the variants; medians.
 *
 *     deno run -A bench/worker_start_bench.ts [--rounds=N] [--tcg]
 *
 * `--tcg` runs the processes under `qemu-x86_64` (QEMU's user-mode emulator,
 * TCG): the kind of translated execution the nested KVM host gives, where a
 * start costs seconds.
 *
 * @module
 */
import { codeCacheBytes } from "../sys/testdata/code_cache_bytes.ts";

const PROBE = new URL("./_worker_start_probe.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;
const TCG = Deno.args.includes("--tcg");
const roundsArg = Deno.args.find((a) => a.startsWith("--rounds="));
const ROUNDS = Number(roundsArg?.slice(9) ?? (TCG ? 3 : 7));
const STARTS = 10;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new RangeError(`Invalid --rounds: ${ROUNDS}`);

interface Probe {
  serveMs: number;
  startMs: number;
}

/** One start: `kind` in its own process, with this DENO_DIR and module cache. */
async function probe(
  kind: string,
  dirs: { denoDir: string; cache: string },
  blob: boolean,
): Promise<Probe> {
  const env: Record<string, string> = { DENO_DIR: dirs.denoDir, XDG_CACHE_HOME: dirs.cache };
  if (blob) env.DENOVMM_NO_BUNDLE = "1";
  const deno = Deno.execPath();
  const args = ["run", "--allow-ffi", "--no-check", PROBE, kind];
  const out = await new Deno.Command(TCG ? "qemu-x86_64" : deno, {
    args: TCG ? [deno, ...args] : args,
    cwd: REPO,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  const last = text.split("\n").pop() ?? "";
  const r = last.startsWith("{") ? JSON.parse(last) : {};
  if (out.code !== 0 || r.startMs === undefined) {
    throw new Error(
      `${kind} (${blob ? "blob" : "bundle"}) failed: ${text} ${
        new TextDecoder().decode(out.stderr).slice(-2000)
      }`,
    );
  }
  return r;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function tempDirs(): Promise<{ denoDir: string; cache: string }> {
  return {
    denoDir: await Deno.makeTempDir({ prefix: "denovmm-wsb-deno-" }),
    cache: await Deno.makeTempDir({ prefix: "denovmm-wsb-cache-" }),
  };
}

async function removeDirs(d: { denoDir: string; cache: string }): Promise<void> {
  await Deno.remove(d.denoDir, { recursive: true });
  await Deno.remove(d.cache, { recursive: true });
}

const KINDS = ["vcpu", "aio"];
const samples = new Map<string, Probe[]>();
const add = (key: string, p: Probe) => samples.set(key, [...(samples.get(key) ?? []), p]);

// Warm: one DENO_DIR and module cache per way, filled by a first start each.
const warm = { bundle: await tempDirs(), blob: await tempDirs() };
try {
  for (const kind of KINDS) {
    await probe(kind, warm.bundle, false);
    await probe(kind, warm.blob, true);
  }
  for (let r = 0; r < ROUNDS; r++) {
    add("empty", await probe("empty", warm.bundle, false));
    for (const kind of KINDS) {
      add(`${kind} bundle warm`, await probe(kind, warm.bundle, false));
      add(`${kind} blob warm`, await probe(kind, warm.blob, true));
      for (const blob of [false, true]) {
        const cold = await tempDirs();
        try {
          add(`${kind} ${blob ? "blob" : "bundle"} cold`, await probe(kind, cold, blob));
        } finally {
          await removeDirs(cold);
        }
      }
    }
  }
} finally {
  await removeDirs(warm.bundle);
  await removeDirs(warm.blob);
}

const floor = median(samples.get("empty")!.map((p) => p.startMs));
const host = TCG ? "under qemu-x86_64 (TCG)" : "on this host";
console.log(
  `\nWorker start, new Worker -> first message, --allow-ffi only, ${host}; median of ${ROUNDS}\n`,
);
console.log("| Worker | served as | cache | serve ms | start ms | vs blob | vs empty Worker |");
console.log("|---|---|---|---|---|---|---|");
console.log(`| empty (floor) | data: | - | - | ${floor.toFixed(1)} | - | 1.00x |`);
for (const kind of KINDS) {
  for (const state of ["warm", "cold"]) {
    const blob = median(samples.get(`${kind} blob ${state}`)!.map((p) => p.startMs));
    for (const way of ["bundle", "blob"]) {
      const ps = samples.get(`${kind} ${way} ${state}`)!;
      const start = median(ps.map((p) => p.startMs));
      const serve = median(ps.map((p) => p.serveMs));
      const vsBlob = way === "blob" ? "1.00x" : `${(start / blob).toFixed(2)}x`;
      console.log(
        `| ${kind} | ${way} | ${state} | ${serve.toFixed(1)} | ${start.toFixed(1)} | ${vsBlob} | ${
          (start / floor).toFixed(2)
        }x |`,
      );
    }
  }
}

// Code cache growth over STARTS starts of the vCPU entry, each way, from empty.
console.log(`\nDeno's V8 code cache (DENO_DIR/v8_code_cache_v2*), vCPU entry, ${STARTS} starts\n`);
console.log("| served as | after 1 start | after 10 | growth per start after the 2nd |");
console.log("|---|---|---|---|");
for (const blob of [false, true]) {
  const d = await tempDirs();
  try {
    const bytes: number[] = [];
    for (let i = 0; i < STARTS; i++) {
      await probe("vcpu", d, blob);
      bytes.push(codeCacheBytes(d.denoDir));
    }
    const per = (bytes[STARTS - 1] - bytes[1]) / (STARTS - 2);
    console.log(
      `| ${blob ? "blob" : "bundle"} | ${(bytes[0] / 1024).toFixed(0)} KiB | ${
        (bytes[STARTS - 1] / 1024).toFixed(0)
      } KiB | ${(per / 1024).toFixed(1)} KiB |`,
    );
  } finally {
    await removeDirs(d);
  }
}
