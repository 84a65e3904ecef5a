import assert from "node:assert/strict";
import { MainLoop } from "../mainloop/main_loop.ts";
import { QmpServer } from "../qmp/server.ts";
import { FakeTarget } from "../qmp/_test_client.ts";

const TOOL = new URL("./qmp.ts", import.meta.url).pathname;

async function tool(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", TOOL, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("tools/qmp.ts runs one command and prints its return, errors exit 1", async () => {
  const dir = Deno.makeTempDirSync();
  const loop = new MainLoop();
  const running = loop.run();
  const target = new FakeTarget();
  const server = QmpServer.listen(loop, `${dir}/q.sock`, target);
  try {
    const ok = await tool([`${dir}/q.sock`, "query-status"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), {
      status: "running",
      singlestep: false,
      running: true,
    });
    const stop = await tool([`${dir}/q.sock`, "stop"]);
    assert.equal(stop.code, 0);
    assert.match(stop.stderr, /"event": ?"STOP"/);
    assert.equal(target.state, "paused");
    const bad = await tool([`${dir}/q.sock`, "query-stats", '{"target":"nope"}']);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr.trim(),
      "qmp: GenericError: Parameter 'target' does not accept value 'nope'",
    );
    const gone = await tool([`${dir}/absent.sock`, "query-status"]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^qmp: connect .*absent\.sock failed: ENOENT/);
  } finally {
    server.close();
    loop.stop();
    await running;
    loop.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
