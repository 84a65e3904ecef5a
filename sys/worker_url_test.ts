import assert from "node:assert/strict";

const decoder = new TextDecoder();

/** Runs `code` as a script under the given permissions (n times); returns stdout+stderr. */
async function runScript(
  code: string,
  permissions: string[],
  options: { env?: Record<string, string>; after?: (run: number) => Promise<void>; runs?: number } =
    {},
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-wurl-" });
  try {
    const script = `${dir}/main.ts`;
    await Deno.writeTextFile(script, code);
    let text = "";
    for (let i = 0; i < (options.runs ?? 1); i++) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-check", ...permissions, script],
        env: options.env,
      }).output();
      text = decoder.decode(out.stdout).trim() + decoder.decode(out.stderr).trim();
      await options.after?.(i);
    }
    return text;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function script(target: string): string {
  const workerUrl = new URL("./worker_url.ts", import.meta.url).href;
  const url = new URL(target, import.meta.url).href;
  return `import { workerUrl } from ${JSON.stringify(workerUrl)};
const url = workerUrl(${JSON.stringify(url)});
const w = new Worker(url, { type: "module" });
w.onmessage = (e) => {
  const kind = url.slice(0, url.indexOf(":"));
  console.log(kind, e.data.tid > 0, e.data.base ?? "");
  w.terminate();
};
w.onerror = (e) => { console.log("error", e.message); e.preventDefault(); w.terminate(); };`;
}

Deno.test("Workers load under --allow-ffi alone (module graph served as blob modules)", async () => {
  const code = script("./testdata/echo_worker.ts");
  assert.equal(await runScript(code, ["--allow-ffi"]), "blob true");
  assert.equal(await runScript(code, ["--allow-ffi", "--allow-read"]), "file true");
});

Deno.test("a served module's import.meta.url is its file URL: nested Workers start", async () => {
  const out = await runScript(script("./testdata/nested_worker.ts"), ["--allow-ffi"]);
  const base = new URL("./testdata/nested_worker.ts", import.meta.url).href;
  assert.equal(out, `blob true ${base}`);
});

Deno.test("served modules write nothing new under DENO_DIR after the first run", async () => {
  const denoDir = await Deno.makeTempDir({ prefix: "denovmm-denodir-" });
  try {
    const count = async () => {
      let n = 0;
      const walk = async (d: string) => {
        for await (const e of Deno.readDir(d)) {
          if (e.isDirectory) await walk(`${d}/${e.name}`);
          else if (!/-(wal|shm)$/.test(e.name)) n++;
        }
      };
      await walk(denoDir);
      return n;
    };
    const counts: number[] = [];
    const out = await runScript(script("./testdata/nested_worker.ts"), ["--allow-ffi"], {
      env: { DENO_DIR: denoDir },
      runs: 5,
      after: async () => void counts.push(await count()),
    });
    assert.match(out, /^blob true/);
    // The first run fills the cache; the next four add nothing.
    assert.ok(counts[0] > 0, "the first run caches its transpiled modules");
    assert.deepEqual(counts.slice(1), [counts[0], counts[0], counts[0], counts[0]], `${counts}`);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

/** A script that serves echo_worker.ts's graph, prefetched or not, and prints how and what. */
function prefetchScript(prefetch: boolean): string {
  const workerUrl = new URL("./worker_url.ts", import.meta.url).href;
  const url = new URL("./testdata/nested_worker.ts", import.meta.url).href;
  return `import { prefetchWorkerModules, servedModuleCounts, workerUrl } from ${
    JSON.stringify(workerUrl)
  };
const url = ${JSON.stringify(url)};
${prefetch ? "await prefetchWorkerModules([url]);" : ""}
const served = workerUrl(url);
// The served graph's text, blob URLs replaced by their order of appearance.
const seen = new Map();
async function text(u) {
  let t = await (await fetch(u)).text();
  for (const b of t.match(/(?<=["'])blob:[^"']+/g) ?? []) {
    if (!seen.has(b)) seen.set(b, "M" + seen.size + ":" + (await text(b)));
  }
  return t.replace(/(?<=["'])blob:[^"']+/g, (b) => seen.get(b));
}
const all = await text(served);
const w = new Worker(served, { type: "module" });
w.onmessage = (e) => {
  console.log(JSON.stringify({ counts: servedModuleCounts(), ok: e.data.tid > 0, all }));
  w.terminate();
};`;
}

Deno.test("prefetched Worker modules are served as transpiled in place, off this thread", async () => {
  const withPrefetch = JSON.parse(await runScript(prefetchScript(true), ["--allow-ffi"]));
  const inPlace = JSON.parse(await runScript(prefetchScript(false), ["--allow-ffi"]));
  // nested_worker.ts, worker_url.ts, fd.ts, libc.ts, errno.ts: all from the prefetch.
  assert.equal(withPrefetch.counts.inPlace, 0);
  assert.ok(withPrefetch.counts.prefetched >= 4, JSON.stringify(withPrefetch.counts));
  assert.equal(inPlace.counts.prefetched, 0);
  assert.equal(inPlace.counts.inPlace, withPrefetch.counts.prefetched);
  assert.ok(withPrefetch.ok && inPlace.ok, "the served Worker starts either way");
  assert.equal(withPrefetch.all, inPlace.all);
  assert.match(withPrefetch.all, /postMessage/);
});

Deno.test("a prefetch is a no-op where Workers may read their files", async () => {
  const out = JSON.parse(await runScript(prefetchScript(true), ["--allow-ffi", "--allow-read"]));
  assert.deepEqual(out.counts, { prefetched: 0, inPlace: 0 });
});
