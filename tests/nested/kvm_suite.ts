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
 * @module
 */
import { NestedHostError, type NestedOptions, runNested, shellQuote } from "./run_nested.ts";

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
  /** Copy output to this process's stdout/stderr as it arrives (default true). */
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
  const attempts = opts.attempts ?? 3;
  const deadline = performance.now() + (opts.budgetS ?? 3000) * 1000;
  const run = opts.run ?? runNested;
  const log = opts.log ?? ((l: string) => console.log(l));
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
    let output: string;
    try {
      const r = await run(suiteCommand(pending, opts.testArgs), {
        stream: opts.stream ?? true,
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
    }
    const parsed = parseSuiteOutput(output, pending);
    result.finished.push(...parsed.finished);
    pending = parsed.pending;
  }
  result.unfinished = pending;
  return result;
}
