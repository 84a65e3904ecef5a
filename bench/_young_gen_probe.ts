/**
 * Runs a heap probe (`bench/_loop_alloc.ts`, `bench/_serial_alloc.ts`) in a
 * process of its own with a 64 MiB young generation, so that no scavenge
 * runs between its two `heapUsed` readings, and returns the JSON object its
 * last line prints.
 *
 * @module
 */

/**
 * @param script the probe, relative to this directory (`./_loop_alloc.ts`)
 * @param args its arguments
 * @returns the probe's answer
 */
export async function youngGenProbe(
  script: string,
  args: readonly string[],
): Promise<Record<string, number | boolean>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-check",
      "--v8-flags=--min-semi-space-size=64,--max-semi-space-size=64",
      new URL(script, import.meta.url).pathname,
      ...args,
    ],
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error(`${script} ${args.join(" ")}: exit ${out.code}`);
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
}
