/**
 * The VMM as users run it, for the KVM tests: `deno run --allow-ffi main.ts
 * ARGS` from the repository root (`--no-check`: type-checking under the
 * nested emulator is slow, and CI checks types on its own), its stdout and
 * stderr collected as they come, a kill after a time limit.
 *
 * @module
 */

/** The repository root (with a trailing slash). */
export const REPO = new URL("../..", import.meta.url).pathname;

/** How a VMM process ended. */
export interface VmmRun {
  /** Exit status (128 + N for signal N, as a shell reports it). */
  code: number;
  /** The signal that ended it, if one did. */
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
  /** Seconds from spawn to exit. */
  seconds: number;
}

/** A running VMM process. */
export interface RunningVmm {
  child: Deno.ChildProcess;
  /** stdout so far. */
  readonly stdout: string;
  /** stderr so far. */
  readonly stderr: string;
  /** Writes `text` to its stdin (only when started with `stdin: true`). */
  type(text: string): Promise<void>;
  /** Resolves once stdout matches `re`; rejects if the process ends first. */
  waitFor(re: RegExp): Promise<void>;
  /** Sends a signal; a process already gone is not an error. */
  kill(signal?: Deno.Signal): void;
  /** Resolves when it has exited and both streams are read. */
  done: Promise<VmmRun>;
}

/** Options for {@linkcode startVmm} and {@linkcode runVmm}. */
export interface VmmOptions {
  /** The program, relative to the repository root (default `main.ts`). */
  script?: string;
  /** Deno permission flags (default `--allow-ffi` alone, as users run it). */
  permissions?: string[];
  /** Extra environment. */
  env?: Record<string, string>;
  /** Pipe stdin, for {@linkcode RunningVmm.type} (default: stdin is /dev/null). */
  stdin?: boolean;
  /** SIGKILL after this many ms (default 240 000). */
  timeoutMs?: number;
  /** Called after each stdout chunk with everything so far; awaited before the next. */
  onStdout?: (stdout: string, vmm: RunningVmm) => void | Promise<void>;
}

/** Spawns the VMM; see the module doc. */
export function startVmm(args: string[], opts: VmmOptions = {}): RunningVmm {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      ...(opts.permissions ?? ["--allow-ffi"]),
      opts.script ?? "main.ts",
      ...args,
    ],
    cwd: REPO,
    env: opts.env,
    stdin: opts.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stdout = "";
  let stderr = "";
  const writer = opts.stdin ? child.stdin.getWriter() : undefined;
  const waiters = new Set<{ re: RegExp; resolve: () => void; reject: (e: Error) => void }>();
  let ended = false;
  const vmm: RunningVmm = {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    async type(text: string) {
      if (!writer) throw new Error("the VMM was started without a stdin pipe");
      await writer.write(new TextEncoder().encode(text));
    },
    waitFor(re: RegExp) {
      if (re.test(stdout)) return Promise.resolve();
      if (ended) return Promise.reject(new Error(`The VMM ended before ${re}`));
      return new Promise((resolve, reject) => waiters.add({ re, resolve, reject }));
    },
    kill(signal: Deno.Signal = "SIGKILL") {
      try {
        child.kill(signal);
      } catch { /* already exited */ }
    },
    done: undefined as unknown as Promise<VmmRun>,
  };
  const timer = setTimeout(() => vmm.kill("SIGKILL"), opts.timeoutMs ?? 240_000);
  const readErr = (async () => {
    const dec = new TextDecoder();
    for await (const c of child.stderr) stderr += dec.decode(c, { stream: true });
  })();
  vmm.done = (async () => {
    const dec = new TextDecoder();
    for await (const c of child.stdout) {
      stdout += dec.decode(c, { stream: true });
      for (const w of waiters) {
        if (w.re.test(stdout)) {
          waiters.delete(w);
          w.resolve();
        }
      }
      await opts.onStdout?.(stdout, vmm);
    }
    ended = true;
    for (const w of waiters) w.reject(new Error(`The VMM ended before ${w.re}`));
    waiters.clear();
    await readErr;
    await writer?.close().catch(() => {});
    const st = await child.status;
    clearTimeout(timer);
    return {
      code: st.code,
      signal: st.signal,
      stdout,
      stderr,
      seconds: (performance.now() - t0) / 1000,
    };
  })();
  return vmm;
}

/** Runs the VMM to its end; see {@linkcode startVmm}. */
export function runVmm(args: string[], opts: VmmOptions = {}): Promise<VmmRun> {
  return startVmm(args, opts).done;
}

/** An `onStdout` that types `input` once, when `marker` first shows (needs `stdin: true`). */
export function typeOnce(marker: string, input: string): VmmOptions["onStdout"] {
  let typed = false;
  return async (stdout, vmm) => {
    if (typed || !stdout.includes(marker)) return;
    typed = true;
    await vmm.type(input);
  };
}

/**
 * An `onStdout` for a guest shell that may drop what is typed at it before
 * it reads (busybox ash's line editor asks the terminal for the cursor
 * position, ESC[6n, and takes input already queued for its answer): after
 * `marker` shows, types `line`, and types it again every `retryMs` until
 * `answer` shows after the marker; then types `last` (needs `stdin: true`).
 */
export function typeUntilAnswered(
  marker: string,
  line: string,
  answer: string,
  last: string,
  retryMs = 3000,
  tries = 10,
): VmmOptions["onStdout"] {
  let from = -1;
  let typed = 0;
  let done = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let latest = "";
  const answered = () => latest.indexOf(answer, from) >= 0;
  const attempt = async (vmm: RunningVmm) => {
    timer = undefined;
    if (done) return;
    if (answered()) {
      done = true;
      await vmm.type(last).catch(() => {});
      return;
    }
    if (typed >= tries) return;
    typed++;
    await vmm.type(line).catch(() => {});
    timer = setTimeout(() => attempt(vmm), retryMs);
  };
  return async (stdout, vmm) => {
    latest = stdout;
    if (done) return;
    if (from < 0) {
      const at = stdout.indexOf(marker);
      if (at < 0) return;
      from = at + marker.length;
      await attempt(vmm);
      return;
    }
    if (answered()) {
      if (timer !== undefined) clearTimeout(timer);
      await attempt(vmm);
    }
  };
}

/** The last part of a run's output, for assertion messages. */
export function runLog(r: { stdout: string; stderr: string }, chars = 4000): string {
  return `\n--- stdout ---\n${r.stdout.slice(-chars)}\n--- stderr ---\n${r.stderr.slice(-chars)}`;
}
