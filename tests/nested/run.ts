/**
 * CLI: run a command inside the nested KVM host, streaming its output and
 * exiting with its exit status.
 *
 *     deno run -A tests/nested/run.ts [--cpus N] [--memory MiB] [--timeout S] [--idle-timeout S] [--verbose] [--qemu] -- <command...>
 *
 * One word after `--` is used as a shell command line as-is; several words are
 * quoted one by one. Exit status 124: time limit hit; 125: the nested host
 * failed (its console tail is printed).
 *
 * @module
 */

import { NestedHostError, runNested, shellQuote } from "./run_nested.ts";

function usage(message: string): never {
  console.error(`${message}
usage: deno run -A tests/nested/run.ts [--cpus N] [--memory MiB] [--timeout S] [--idle-timeout S] [--verbose] [--qemu] -- <command...>`);
  Deno.exit(2);
}

/** Parses the CLI arguments into a command line and options. */
export function parseArgs(args: string[]): {
  command: string;
  cpus?: number;
  memoryMiB?: number;
  timeoutS?: number;
  idleTimeoutS?: number;
  verbose: boolean;
  qemu?: boolean;
} {
  const sep = args.indexOf("--");
  const flags = sep < 0 ? args : args.slice(0, sep);
  const words = sep < 0 ? [] : args.slice(sep + 1);
  if (words.length === 0) throw new TypeError("No command given after --");
  const out: ReturnType<typeof parseArgs> = {
    command: words.length === 1 ? words[0] : words.map(shellQuote).join(" "),
    verbose: false,
  };
  for (let i = 0; i < flags.length; i++) {
    const f = flags[i];
    if (f === "--verbose" || f === "-v") {
      out.verbose = true;
      continue;
    }
    if (f === "--qemu") {
      out.qemu = true;
      continue;
    }
    const value = Number(flags[++i]);
    if (flags[i] === undefined || !Number.isFinite(value)) {
      throw new TypeError(`Flag ${f} needs a number`);
    }
    if (f === "--cpus") out.cpus = value;
    else if (f === "--memory") out.memoryMiB = value;
    else if (f === "--timeout") out.timeoutS = value;
    else if (f === "--idle-timeout") out.idleTimeoutS = value;
    else throw new TypeError(`Unknown flag: ${f}`);
  }
  return out;
}

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs(Deno.args);
  } catch (err) {
    usage((err as Error).message);
  }
  const { command, verbose, ...opts } = parsed;
  // Kill QEMU rather than orphan it when we are interrupted or terminated.
  const abort = new AbortController();
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => abort.abort());
  }
  try {
    const r = await runNested(command, { ...opts, stream: true, signal: abort.signal });
    if (verbose) {
      console.error(
        `nested: L1 boot ${r.bootS.toFixed(1)} s, command ${r.commandS.toFixed(1)} s, ` +
          `total ${r.totalS.toFixed(1)} s, exit ${r.code}`,
      );
    }
    Deno.exit(r.code);
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    if (abort.signal.aborted) Deno.exit(130);
    Deno.exit(err instanceof NestedHostError && /timed out/.test(err.message) ? 124 : 125);
  }
}
