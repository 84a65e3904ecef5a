/**
 * For bench/memory_bench.ts: the VMM's resident memory when a Linux guest
 * reaches /init (the case of boot_bench's RSS row: Debian bzImage, busybox
 * initramfs, 256 MiB, 1 and 2 vCPUs, no devices), broken down by class, next
 * to the floor: an empty `deno run --allow-ffi` with as many empty Workers as
 * the VMM has isolates. Needs KVM (the bench runs it inside the nested host
 * when there is none here).
 *
 * @module
 */
import {
  CLASSES,
  classify,
  parseSmaps,
  type RssClass,
  statusKib,
  summarizeThreads,
  threadNames,
} from "./_rss_breakdown.ts";
import { debianKernel } from "../tests/fixtures/debian.ts";
import { buildTestInitramfs, INIT_MARKER } from "../tests/fixtures/initramfs.ts";

const REPO = new URL("..", import.meta.url).pathname;
const MEMORY_MIB = 256;
const TIMEOUT_MS = 240_000;

/** What one process held. */
export interface RssSample {
  /** VmRSS, KiB. */
  vmRss: number;
  /** Guest RAM resident, KiB (0 for the floor). */
  guestRam: number;
  /** Resident KiB per class. */
  classes: Map<RssClass, { rssKib: number; thpKib: number; count: number }>;
  /** Thread names, summarized. */
  threads: string;
  /** RssAnon, RssFile. */
  anon: number;
  /** RssFile. */
  file: number;
}

function sample(pid: number): RssSample {
  const exe = Deno.realPathSync(`/proc/${pid}/exe`);
  const classes = classify(parseSmaps(Deno.readTextFileSync(`/proc/${pid}/smaps`)), {
    guestRamKib: MEMORY_MIB * 1024,
    exe,
  });
  return {
    vmRss: statusKib(pid, "VmRSS"),
    guestRam: classes.get("guest RAM")!.rssKib,
    classes,
    threads: summarizeThreads(threadNames(pid)),
    anon: statusKib(pid, "RssAnon"),
    file: statusKib(pid, "RssFile"),
  };
}

/** Runs `args` until a stdout line matches `ready`, samples it, then ends it. */
async function sampleAt(
  args: string[],
  ready: RegExp,
  opts: { env?: Record<string, string>; settleMs?: number } = {},
): Promise<RssSample> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: REPO,
    env: opts.env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
  const stderr = new Response(child.stderr).text();
  const dec = new TextDecoder();
  let out = "";
  let s: RssSample | undefined;
  for await (const chunk of child.stdout) {
    out += dec.decode(chunk, { stream: true });
    if (s === undefined && ready.test(out)) {
      if (opts.settleMs) await new Promise((r) => setTimeout(r, opts.settleMs));
      s = sample(child.pid);
      await child.stdin.close().catch(() => {});
    }
  }
  await child.status;
  clearTimeout(killer);
  const err = await stderr;
  if (!s) {
    throw new Error(`${args.join(" ")}: never ready\n${out.slice(-2000)}\n${err.slice(-2000)}`);
  }
  return s;
}

/**
 * Boots the VMM to /init with `cpus` vCPUs and samples it there.
 *
 * @param cpus vCPUs
 * @param options `deno`: deno run flags before main.ts; `main`: path of main.ts (another tree)
 */
export async function vmmAtInit(
  cpus: number,
  options: { main?: string } = {},
): Promise<RssSample> {
  const kernel = (await debianKernel("amd64")).vmlinuz;
  // The guest waits a few seconds at /init, so the sample is of a live VMM.
  const initrd = await buildTestInitramfs({ script: "sleep 3" });
  // Another tree gets a cache of its own: the trees' kernel cache formats may
  // differ, and sharing one would make each boot unpack the kernel again.
  const tree = options.main?.replace(/\/?main\.ts$/, "");
  const env = tree === undefined
    ? undefined
    : { XDG_CACHE_HOME: `${tree.startsWith("/") ? tree : `${REPO}${tree}`}/.cache/xdg` };
  // deno-fmt-ignore
  return sampleAt([
    "run", "--no-check", "--allow-ffi", options.main ?? "main.ts",
    "--kernel", kernel, "--initrd", initrd, "--append", "console=ttyS0 quiet",
    "--cpus", String(cpus), "--memory", `${MEMORY_MIB}M`,
  ], new RegExp(`${INIT_MARKER} uname=`), { env });
}

/**
 * The floor: an empty `deno run --allow-ffi` with `workers` empty Workers.
 *
 * @param workers empty Workers to start
 */
export function floor(workers: number, options: { trim?: boolean } = {}): Promise<RssSample> {
  return floorWith(workers, { trim: options.trim });
}

/**
 * {@link floor}, with mallopt(M_ARENA_MAX, arenaMax) first if given, and
 * start-up memory given back as the VMM does if `trim`.
 */
export function floorWith(
  workers: number,
  options: { arenaMax?: number; trim?: boolean } = {},
): Promise<RssSample> {
  const extra = options.arenaMax === undefined ? [] : [`--arena-max=${options.arenaMax}`];
  if (options.trim) extra.push("--trim");
  return sampleAt(
    ["run", "--no-check", "--allow-ffi", "bench/_empty_workers.ts", String(workers), ...extra],
    /^ready$/m,
    { settleMs: 300 },
  );
}

/** Median of each figure over samples. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const mib = (kib: number) => (kib / 1024).toFixed(1);

/**
 * Prints the /init table: ours and the floor per class, MiB.
 *
 * @param rows label -> samples (medians are printed)
 */
export function printInitTable(rows: [string, RssSample[]][]): void {
  console.log(`| class (resident MiB) | ${rows.map(([l]) => l).join(" | ")} |`);
  console.log(`|---|${rows.map(() => "---:").join("|")}|`);
  const line = (name: string, f: (s: RssSample) => number) =>
    console.log(`| ${name} | ${rows.map(([, ss]) => mib(median(ss.map(f)))).join(" | ")} |`);
  line("**VmRSS beyond guest RAM**", (s) => s.vmRss - s.guestRam);
  for (const c of CLASSES) {
    if (c === "guest RAM") continue;
    const cell = (ss: RssSample[]) => {
      const rss = mib(median(ss.map((s) => s.classes.get(c)!.rssKib)));
      const thp = median(ss.map((s) => s.classes.get(c)!.thpKib));
      return thp > 0 ? `${rss} (THP ${mib(thp)})` : rss;
    };
    console.log(`| ${c} | ${rows.map(([, ss]) => cell(ss)).join(" | ")} |`);
  }
  line("of all: in transparent huge pages", (s) => {
    let t = 0;
    for (const [c, v] of s.classes) if (c !== "guest RAM") t += v.thpKib;
    return t;
  });
  line("anonymous beyond guest RAM (RssAnon - guest RAM)", (s) => s.anon - s.guestRam);
  line("file-backed (RssFile: shared, clean, in the page cache anyway)", (s) => s.file);
  console.log(`\nThreads:`);
  for (const [l, ss] of rows) console.log(`- ${l}: ${ss[0].threads}`);
}
