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
      await opts.onStdout?.(stdout, vmm);
    }
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

/** The last part of a run's output, for assertion messages. */
export function runLog(r: { stdout: string; stderr: string }, chars = 4000): string {
  return `\n--- stdout ---\n${r.stdout.slice(-chars)}\n--- stderr ---\n${r.stderr.slice(-chars)}`;
}
