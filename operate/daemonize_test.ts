import assert from "node:assert/strict";

const PROBE = new URL("./testdata/daemon_probe.ts", import.meta.url).pathname;

async function probe(dir: string, mode: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", PROBE, dir, mode],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("-daemonize: returns once the copy is ready; the copy runs on in its own session", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const r = await probe(dir, "ok");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "", "the copy's stdout is detached");
    const pid = Number(Deno.readTextFileSync(`${dir}/pid`));
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    assert.equal(Number(f[3]), pid, "session leader (setsid)");
    assert.throws(
      () => Deno.statSync(`${dir}/alive`),
      "the command returned before the copy ended",
    );
    for (let i = 0; i < 100; i++) {
      try {
        Deno.statSync(`${dir}/alive`);
        break;
      } catch {
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    assert.equal(Deno.readTextFileSync(`${dir}/alive`), "yes");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("-daemonize: a copy that fails before it is ready fails the command with its error", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const r = await probe(dir, "fail");
    assert.equal(r.code, 3);
    assert.equal(r.stderr.trim(), "probe: set-up failed");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
