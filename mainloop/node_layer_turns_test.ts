import assert from "node:assert/strict";

interface Seen {
  found: number;
  rate: number;
  turns: number;
  errors: string[];
}

async function run(mode: string): Promise<Seen> {
  const script = new URL("./testdata/node_layer_turns.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", script, mode],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(out.code, 0);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("once Deno's Node layer runs, the loop still watches Deno's fd, turning through Deno's pool", async () => {
  for (const mode of ["plain", "node"]) {
    const seen = await run(mode);
    assert.ok(seen.found >= 0, `${mode}: the probe found no Deno fd: nothing to test`);
    // Watched: Deno's interval gets its turns (every 5 ms), a few hundred
    // a second (with the Node layer ~600, through Deno's pool), not a storm.
    assert.ok(
      seen.rate > 50 && seen.rate < 1500,
      `${mode}: ${seen.rate.toFixed(0)} turns a second`,
    );
    assert.deepEqual(seen.errors, [], mode);
  }
});
