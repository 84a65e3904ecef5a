// The seed's POSIX AIO example, run as a user would: --allow-ffi only.
import assert from "node:assert/strict";

async function run(file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      "--allow-ffi",
      new URL("./aio_read.ts", import.meta.url).pathname,
      file,
    ],
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("aio_read reads 1024 bytes of a file asynchronously", async () => {
  const file = await Deno.makeTempFile();
  try {
    const text = "0123456789abcdef".repeat(100); // 1600 bytes: one 1024-byte read
    await Deno.writeTextFile(file, text);
    const r = await run(file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^reading\.\.\.$/m);
    assert.match(r.stdout, /^read 1024 bytes: 0123456789abcdef/m);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("aio_read on a missing file fails like the C program", async () => {
  const r = await run("/nonexistent/file");
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim(), "open: No such file or directory");
});
