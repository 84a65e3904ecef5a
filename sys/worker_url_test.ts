import assert from "node:assert/strict";

Deno.test("Workers load under --allow-ffi alone (module graph served as blobs)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-wurl-" });
  try {
    const script = `${dir}/main.ts`;
    const workerUrl = new URL("./worker_url.ts", import.meta.url).href;
    const target = new URL("./testdata/echo_worker.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { workerUrl } from ${JSON.stringify(workerUrl)};
const url = workerUrl(${JSON.stringify(target)});
const w = new Worker(url, { type: "module" });
w.onmessage = (e) => { console.log(url.startsWith("blob:") ? "blob" : "file", e.data.tid > 0); w.terminate(); };
w.onerror = (e) => { console.log("error", e.message); e.preventDefault(); w.terminate(); };`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-check", "--allow-ffi", script],
    }).output();
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "blob true");
    const granted = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-check", "--allow-ffi", "--allow-read", script],
    }).output();
    assert.equal(new TextDecoder().decode(granted.stdout).trim(), "file true");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
