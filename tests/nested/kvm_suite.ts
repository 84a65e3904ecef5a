/**
 * Runs the KVM test files inside the nested KVM host, one `deno test` per file,
 * so that a nested host that dies or hangs costs only the file it was in.
 *
 * The emulated L1 kernel is not perfectly stable under hours of nested SVM
 * (a scheduler panic was seen in about one CI run in five, a silent hang in
 * another): where the host fails, the files that had not finished run again
 * in a fresh host, up to `attempts` hosts in all, within one time budget.
 * Files that finished keep their results; a test failure is never retried.
 *
 * With `lanes` above one, the files are split into that many lanes of about
 * equal expected time (kvm_lanes.ts), each run in a nested host of its own at
 * the same time: a host has one L1 CPU, which QEMU emulates on one host
 * thread, so a second host uses the host's second core instead of leaving it
 * idle. Each lane retries its own failed hosts; the budget is shared.
 *
 * @module
 */
import { NestedHostError, type NestedOptions, runNested, shellQuote } from "./run_nested.ts";
import { splitIntoLanes } from "./kvm_lanes.ts";

const encoder = new TextEncoder();

/** The line each file's run ends with inside the host: marker, file, exit status. */
const DONE = "#denovmm-kvm-file-done";

/** What one file's run produced. */
export interface KvmFileResult {
  /** The test file, relative to the repository root. */
  file: string;
  /** `deno test`'s exit status inside the host. */
  code: number;
  /** Its output (stdout, with stderr interleaved in arrival order). */
  output: string;
}

/** How the whole suite went. */
export interface KvmSuiteResult {
  /** Files that ran to their end, in order. */
  finished: KvmFileResult[];
  /** Files that never finished: every host they were given failed, or time ran out. */
  unfinished: string[];
  /** Why each failed host failed, in order. */
  hostFailures: string[];
}

/** Options for {@linkcode runKvmSuite}. */
export interface KvmSuiteOptions {
  /** Arguments after the file for each `deno test` (flags such as `--filter`). */
  testArgs?: string[];
  /** Nested hosts to use at most (default 3). */
  attempts?: number;
  /** Seconds for all hosts together (default 3000). */
  budgetS?: number;
  /** Seconds without output after which a host counts as hung (default 300; deno test prints a line a minute for a slow test). */
  idleTimeoutS?: number;
  /**
   * L1 CPUs of each host (default 1). With two (QEMU 7.2, a host thread per
   * CPU), the reset-loop test hung the L1 in five of six runs (its CPUs
   * spinning in the scheduler and in a queued spinlock); with the two taking
   * turns on one thread it passed, but 2-vCPU Linux guests then stalled
   * early in boot, after bringing up their second CPU. One L1 CPU has no
   * cross-CPU interrupts for the emulator to get wrong: the L2's vCPU
   * threads take turns on it.
   */
  cpus?: number;
  /**
   * Nested hosts running at once, each with a share of the files (default
   * 1; see kvm_lanes.ts `defaultLanes`).
   */
  lanes?: number;
  /**
   * Copy output to this process's stdout/stderr as it arrives (default
   * true); with more than one lane, line by line, each line marked with its
   * lane.
   */
  stream?: boolean;
  /** Runs the command in a nested host; tests replace it. */
  run?: (command: string, opts: NestedOptions) => Promise<{ code: number; output: string }>;
  /** Where progress lines go (default console.log). */
  log?: (line: string) => void;
}

/** The shell command that runs `files` one after the other, each ending with its marker line. */
export function suiteCommand(files: string[], testArgs: string[] = []): string {
  const args = testArgs.map(shellQuote).join(" ");
  for (const f of files) {
    if (/\s/.test(f)) {
      throw new TypeError(`A test file name with white space: ${JSON.stringify(f)}`);
    }
  }
  return files.map((f) => {
    const q = shellQuote(f);
    return `NO_COLOR=1 deno test -A --no-check ${q}${args ? " " + args : ""}; ` +
      `echo "${DONE} ${f} $?"`;
  }).join("; ");
}

/**
 * Splits a host's output into the files that finished (each with the output
 * since the previous marker) and returns them with the rest of `files`.
 */
export function parseSuiteOutput(
  output: string,
  files: string[],
): { finished: KvmFileResult[]; pending: string[] } {
  const finished: KvmFileResult[] = [];
  const marker = new RegExp(`^${DONE} (\\S+) (\\d+)$`, "gm");
  let from = 0;
  for (const m of output.matchAll(marker)) {
    if (files.includes(m[1])) {
      finished.push({ file: m[1], code: Number(m[2]), output: output.slice(from, m.index) });
    }
    from = m.index + m[0].length;
  }
  const done = new Set(finished.map((f) => f.file));
  return { finished, pending: files.filter((f) => !done.has(f)) };
}

/** Runs `files` in nested hosts until each has finished or the attempts or budget run out. */
export async function runKvmSuite(
  files: string[],
  opts: KvmSuiteOptions = {},
): Promise<KvmSuiteResult> {
  const deadline = performance.now() + (opts.budgetS ?? 3000) * 1000;
  const lanes = splitIntoLanes(files, opts.lanes ?? 1);
  if (lanes.length <= 1) return await runLane(files, opts, deadline, "");
  const log = opts.log ?? ((l: string) => console.log(l));
  lanes.forEach((l, i) => log(`== lane ${i + 1}: ${l.join(" ")}`));
  const results = await Promise.all(
    lanes.map((l, i) => runLane(l, opts, deadline, `[lane ${i + 1}] `)),
  );
  // In the order the files were given, whichever lane ran them.
  const order = (f: string) => files.indexOf(f);
  return {
    finished: results.flatMap((r) => r.finished).sort((a, b) => order(a.file) - order(b.file)),
    unfinished: results.flatMap((r) => r.unfinished).sort((a, b) => order(a) - order(b)),
    hostFailures: results.flatMap((r, i) => r.hostFailures.map((h) => `lane ${i + 1}: ${h}`)),
  };
}

/**
 * Output cut into lines, each written with a prefix once it is whole (a
 * lane's lines, among the other lane's).
 *
 * @param prefix what each line starts with
 * @param emit where whole lines go (default: this process's stdout)
 * @returns `write` for each chunk, `flush` for the last line without its newline
 * @example
 * ```ts
 * import { linePrinter } from "./kvm_suite.ts";
 * const out: string[] = [];
 * const p = linePrinter("[1] ", (t) => out.push(t));
 * p.write("a\nb");
 * p.flush();
 * console.log(out.join("")); // "[1] a\n[1] b\n"
 * ```
 */
export function linePrinter(
  prefix: string,
  emit: (lines: string) => void = (lines) => Deno.stdout.writeSync(encoder.encode(lines)),
): { write: (text: string) => void; flush: () => void } {
  let partial = "";
  return {
    write(text) {
      const all = partial + text;
      const end = all.lastIndexOf("\n");
      if (end < 0) {
        partial = all;
        return;
      }
      partial = all.slice(end + 1);
      emit(all.slice(0, end + 1).replace(/^/gm, prefix).slice(0, -prefix.length));
    },
    flush() {
      if (partial !== "") emit(`${prefix}${partial}\n`);
      partial = "";
    },
  };
}

/** One lane: its files in one nested host after another, retried as above. */
async function runLane(
  files: string[],
  opts: KvmSuiteOptions,
  deadline: number,
  label: string,
): Promise<KvmSuiteResult> {
  const attempts = opts.attempts ?? 3;
  const run = opts.run ?? runNested;
  const logLine = opts.log ?? ((l: string) => console.log(l));
  const log = (l: string) => logLine(`${label}${l}`);
  const stream = opts.stream ?? true;
  const result: KvmSuiteResult = { finished: [], unfinished: [], hostFailures: [] };
  let pending = [...files];
  for (let attempt = 1; attempt <= attempts && pending.length > 0; attempt++) {
    const leftS = Math.floor((deadline - performance.now()) / 1000);
    if (leftS < 120) {
      log(`== no time left for another nested host (${leftS} s)`);
      break;
    }
    if (attempt > 1) {
      log(
        `== a fresh nested host for the ${pending.length} unfinished file(s): ${pending.join(" ")}`,
      );
    }
    const printer = stream && label !== "" ? linePrinter(label) : undefined;
    let output: string;
    try {
      const r = await run(suiteCommand(pending, opts.testArgs), {
        stream: stream && printer === undefined,
        onOutput: printer?.write,
        timeoutS: leftS,
        idleTimeoutS: opts.idleTimeoutS ?? 300,
        cpus: opts.cpus ?? 1,
      });
      output = r.output;
    } catch (e) {
      if (!(e instanceof NestedHostError)) throw e;
      const first = e.message.split("\n")[0];
      result.hostFailures.push(first);
      log(`nested KVM host failed: ${e.message}`);
      output = e.output;
    } finally {
      printer?.flush();
    }
    const parsed = parseSuiteOutput(output, pending);
    result.finished.push(...parsed.finished);
    pending = parsed.pending;
  }
  result.unfinished = pending;
  return result;
}
