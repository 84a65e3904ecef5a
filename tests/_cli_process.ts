/**
 * The command line as users run it (`deno run --allow-ffi main.ts ARGS`), for
 * the tests of its errors: the run's exit code and output, and the check that
 * a user's mistake ends with one line naming it and exit code 1.
 *
 * @module
 */
import assert from "node:assert/strict";

/** The repository root (with a trailing slash). */
export const REPO = new URL("..", import.meta.url).pathname;

/** How one run of the command ended. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `main.ts` with `args` under `--allow-ffi` alone; `wrap` goes before
 * Deno (for example `["unshare", "-U"]` or `["setpriv", ...]`).
 */
export async function runCli(args: string[], wrap: string[] = []): Promise<CliRun> {
  const argv = [...wrap, Deno.execPath(), "run", "--allow-ffi", `${REPO}main.ts`, ...args];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: REPO,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Asserts exit code 1 and exactly one stderr line, `denovmm: ...`, matching `re`. */
export function assertOneLine(r: { code: number; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^denovmm: /);
  assert.match(lines[0], re);
}
