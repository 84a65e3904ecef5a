import assert from "node:assert/strict";

const MODULE = new URL("./start_trace.ts", import.meta.url).href;
const SCRIPT = `
import { epochMs, traceMark, tracePrint } from "${MODULE}";
const early = epochMs();
for (let t = performance.now(); performance.now() - t < 5;) { /* 5 ms pass */ }
traceMark("second");
traceMark("first", early);
tracePrint();
`;

async function run(env: Record<string, string>, allowEnv: boolean): Promise<string> {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/t.ts`;
    await Deno.writeTextFile(file, SCRIPT);
    const args = ["run", "--no-check", `--allow-read=${dir},${new URL(".", MODULE).pathname}`];
    if (allowEnv) args.push("--allow-env=DENOVMM_TRACE_START");
    const out = await new Deno.Command(Deno.execPath(), {
      args: [...args, file],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the trace prints phases in time order with their gaps", async () => {
  const err = await run({ DENOVMM_TRACE_START: "1" }, true);
  const lines = err.trim().split("\n");
  assert.equal(lines.length, 2, err);
  const parse = (l: string) => /trace\s+([\d.]+) ms \(\+\s*([\d.]+)\) (.+)$/.exec(l)!;
  const [a, b] = lines.map(parse);
  assert.equal(a[3], "first");
  assert.equal(b[3], "second");
  // The explicit stamp was taken 5 ms before the other mark.
  assert.ok(Number(b[2]) >= 4.5, `gap ${b[2]} ms`);
  assert.ok(Math.abs(Number(b[1]) - Number(a[1]) - Number(b[2])) < 0.2);
});

Deno.test("the trace is silent unless asked for and readable", async () => {
  assert.equal(await run({}, true), "");
  assert.equal(await run({ DENOVMM_TRACE_START: "0" }, true), "");
  // Without --allow-env it neither prompts nor fails.
  assert.equal(await run({ DENOVMM_TRACE_START: "1" }, false), "");
});
