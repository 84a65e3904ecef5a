import assert from "node:assert/strict";
import { codeCacheBytes } from "./testdata/code_cache_bytes.ts";

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
  const kind = url.includes("#denovmm-bundle=") ? "bundle" : url.slice(0, url.indexOf(":"));
  console.log(kind, e.data.tid > 0, e.data.base ?? "");
  w.terminate();
};
w.onerror = (e) => { console.log("error", e.message); e.preventDefault(); w.terminate(); };`;
}

Deno.test("Workers load under --allow-ffi alone (one bundle; blob modules without bundles)", async () => {
  const code = script("./testdata/echo_worker.ts");
  assert.equal(await runScript(code, ["--allow-ffi"]), "bundle true");
  const off = { env: { DENOVMM_NO_BUNDLE: "1" } };
  assert.equal(await runScript(code, ["--allow-ffi"], off), "blob true");
  assert.equal(await runScript(code, ["--allow-ffi", "--allow-read"]), "file true");
});

Deno.test("a served module's import.meta.url is its file URL: nested Workers start", async () => {
  const out = await runScript(script("./testdata/nested_worker.ts"), ["--allow-ffi"]);
  const base = new URL("./testdata/nested_worker.ts", import.meta.url).href;
  assert.equal(out, `bundle true ${base}`);
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
    assert.match(out, /^bundle true/);
    // The first run fills the cache; the next four add nothing.
    assert.ok(counts[0] > 0, "the first run caches its transpiled modules");
    assert.deepEqual(counts.slice(1), [counts[0], counts[0], counts[0], counts[0]], `${counts}`);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

/**
 * A script that serves `target`'s graph as Workers get it, starts it, and
 * prints where its modules came from, the Worker's first message and the
 * served graph's text (blob URLs replaced by their order of appearance).
 */
function serveScript(target: string): string {
  const workerUrl = new URL("./worker_url.ts", import.meta.url).href;
  const fd = new URL("./fd.ts", import.meta.url).href;
  // A served loader module stands for the bundle file it runs (its path
  // and stamps left out: they differ between processes and caches).
  return `import { bundleRefusals, servedModuleCounts, workerUrl } from ${
    JSON.stringify(workerUrl)
  };
import { readFileFfi } from ${JSON.stringify(fd)};
const served = workerUrl(${JSON.stringify(target)});
const seen = new Map();
async function text(u) {
  let t = await (await fetch(u.split("#")[0])).text();
  const loader = t.match(/encode\\("([^"]+)" \\+/);
  if (loader) {
    const file = new TextDecoder().decode(readFileFfi(loader[1]));
    t = "loader of:" + file.slice(file.indexOf("\\n") + 1);
  }
  for (const b of t.match(/(?<=["'])blob:[^"']+/g) ?? []) {
    if (!seen.has(b)) seen.set(b, "M" + seen.size + ":" + (await text(b)));
  }
  return t.replace(/(?<=["'])blob:[^"']+/g, (b) => seen.get(b));
}
const all = await text(served);
const digest = [...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(all)))]
  .map((b) => b.toString(16).padStart(2, "0")).join("");
const w = new Worker(served, { type: "module" });
w.onmessage = (e) => {
  const kind = served.includes("#denovmm-bundle=") ? "bundle" : served.slice(0, 5);
  console.log(JSON.stringify({ counts: servedModuleCounts(), refusals: bundleRefusals(), data: e.data, all, digest, kind }));
  w.terminate();
};`;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-mcache-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("prepared modules are cached on disk: the next start transpiles nothing", async () => {
  await withTempDir(async (cache) => {
    const code = serveScript(new URL("./testdata/nested_worker.ts", import.meta.url).href);
    const env = { XDG_CACHE_HOME: cache };
    const entries = () => [...Deno.readDirSync(`${cache}/denovmm/js`)].length;
    const first = JSON.parse(await runScript(code, ["--allow-ffi"], { env }));
    const after = entries();
    const second = JSON.parse(await runScript(code, ["--allow-ffi"], { env }));
    // nested_worker.ts, worker_url.ts, module_cache.ts, fd.ts, libc.ts, errno.ts.
    assert.ok(first.counts.transpiled >= 5, JSON.stringify(first.counts));
    assert.equal(first.counts.cached, 0);
    assert.equal(first.counts.bundlesBuilt, 1);
    // The bundle is read back whole: no module's entry is read, none transpiled.
    assert.deepEqual(second.counts, {
      cached: 0,
      transpiled: 0,
      bundlesBuilt: 0,
      bundlesCached: 1,
      refused: 0,
    });
    // (The nested Worker serves echo_worker.ts's graph too, in its own isolate.)
    assert.ok(after >= first.counts.transpiled, `${after} entries`);
    assert.equal(entries(), after, "the second start wrote no new entry");
    assert.ok(first.data.tid > 0 && second.data.tid > 0, "the served Worker starts both times");
    assert.equal(second.all, first.all);
    assert.match(first.all, /postMessage/);
  });
});

Deno.test("a changed module is transpiled again; the others come from the cache", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/src`);
    await Deno.writeTextFile(
      `${dir}/src/w.ts`,
      `import { value } from "./dep.ts";\n(self as unknown as Worker).postMessage({ value });\n`,
    );
    const dep = (v: number) => `export const value: number = ${v};\n`;
    await Deno.writeTextFile(`${dir}/src/dep.ts`, dep(1));
    const code = serveScript(`file://${dir}/src/w.ts`);
    const env = { XDG_CACHE_HOME: `${dir}/cache` };
    const first = JSON.parse(await runScript(code, ["--allow-ffi"], { env }));
    assert.deepEqual(first.counts, {
      cached: 0,
      transpiled: 2,
      bundlesBuilt: 1,
      bundlesCached: 0,
      refused: 0,
    });
    assert.equal(first.data.value, 1);
    await Deno.writeTextFile(`${dir}/src/dep.ts`, dep(2));
    const second = JSON.parse(await runScript(code, ["--allow-ffi"], { env }));
    // The bundle is stale: rebuilt from one cached and one transpiled module.
    assert.deepEqual(second.counts, {
      cached: 1,
      transpiled: 1,
      bundlesBuilt: 1,
      bundlesCached: 0,
      refused: 0,
    });
    assert.equal(second.data.value, 2);
    assert.notEqual(second.all, first.all);
    // One entry per module and one for the bundle, replaced in place.
    assert.equal([...Deno.readDirSync(`${dir}/cache/denovmm/js`)].length, 3);
  });
});

Deno.test("without a usable cache directory modules are transpiled each time, and still load", async () => {
  const code = serveScript(new URL("./testdata/echo_worker.ts", import.meta.url).href);
  await withTempDir(async (open) => {
    // A cache directory others may write is not used (entries are code the VMM runs).
    await Deno.mkdir(`${open}/denovmm/js`, { recursive: true });
    await Deno.chmod(`${open}/denovmm/js`, 0o777);
    for (const dir of ["/proc/denovmm-no-such-dir", open]) {
      for (let i = 0; i < 2; i++) {
        const out = JSON.parse(
          await runScript(code, ["--allow-ffi"], { env: { XDG_CACHE_HOME: dir } }),
        );
        assert.ok(out.counts.transpiled > 0 && out.counts.cached === 0, JSON.stringify(out.counts));
        assert.ok(out.data.tid > 0);
      }
    }
    assert.equal([...Deno.readDirSync(`${open}/denovmm/js`)].length, 0);
  });
});

Deno.test("with read permission Workers load their files: nothing served or cached", async () => {
  const code = serveScript(new URL("./testdata/echo_worker.ts", import.meta.url).href);
  const out = JSON.parse(await runScript(code, ["--allow-ffi", "--allow-read"]));
  assert.deepEqual(out.counts, {
    cached: 0,
    transpiled: 0,
    bundlesBuilt: 0,
    bundlesCached: 0,
    refused: 0,
  });
});

Deno.test("a bundle's text is the same in two processes, each building it from the sources", async () => {
  const code = serveScript(new URL("./testdata/nested_worker.ts", import.meta.url).href);
  const runs: { kind: string; counts: Record<string, number>; digest: string }[] = [];
  for (let i = 0; i < 2; i++) {
    await withTempDir(async (cache) => {
      runs.push(
        JSON.parse(await runScript(code, ["--allow-ffi"], { env: { XDG_CACHE_HOME: cache } })),
      );
    });
  }
  assert.equal(runs[0].kind, "bundle");
  assert.equal(runs[0].counts.bundlesBuilt, 1);
  assert.equal(runs[1].counts.bundlesBuilt, 1);
  assert.equal(runs[0].digest, runs[1].digest);
});

Deno.test("a bundled Worker's start adds one small row to Deno's code cache (blob modules one per module)", async () => {
  // The Worker gets 300 ms after its message: Deno writes a module's code cache after it ran.
  const code = script("./testdata/echo_worker.ts").replace(
    "w.terminate();\n};",
    "setTimeout(() => w.terminate(), 300);\n};",
  );
  assert.match(code, /setTimeout/);
  const grow = async (env: Record<string, string>): Promise<number[]> => {
    const denoDir = await Deno.makeTempDir({ prefix: "denovmm-denodir-" });
    try {
      const sizes: number[] = [];
      await withTempDir(async (cache) => {
        await runScript(code, ["--allow-ffi"], {
          env: { ...env, DENO_DIR: denoDir, XDG_CACHE_HOME: cache },
          runs: 5,
          after: () => Promise.resolve(void sizes.push(codeCacheBytes(denoDir))),
        });
      });
      return sizes;
    } finally {
      await Deno.remove(denoDir, { recursive: true });
    }
  };
  // Deno keys its code cache by module URL, and a blob: URL is new in each
  // process: every start adds rows no start reads again. Per start, after
  // the first (which also caches the main script's modules):
  const perStart = (s: number[]) => (s[4] - s[1]) / 3;
  const bundled = await grow({});
  const blobs = await grow({ DENOVMM_NO_BUNDLE: "1" });
  // The bundle's functions compile lazily, so its row holds little more
  // than its top level: under a fifth of the rows of its modules served one
  // by one (2.9 KB against 30 KB a start for this graph, measured).
  assert.ok(perStart(bundled) > 0, `${bundled}`);
  assert.ok(perStart(bundled) * 5 < perStart(blobs), `bundled ${bundled}, blob modules ${blobs}`);
});

Deno.test("a graph that cannot be bundled is served as blob modules, and its Worker runs", async () => {
  await withTempDir(async (cache) => {
    const code = serveScript(new URL("./testdata/unbundled_worker.ts", import.meta.url).href);
    const out = JSON.parse(
      await runScript(code, ["--allow-ffi"], { env: { XDG_CACHE_HOME: cache } }),
    );
    assert.equal(out.kind, "blob:");
    assert.equal(out.counts.refused, 1);
    assert.match(out.refusals[0], /destructuring in an export declaration/);
    assert.deepEqual(out.data, { a: 1, b: 2 });
    // The refusal is cached too: the next start neither reads nor bundles the graph again.
    const again = JSON.parse(
      await runScript(code, ["--allow-ffi"], { env: { XDG_CACHE_HOME: cache } }),
    );
    assert.equal(again.kind, "blob:");
    assert.equal(again.counts.bundlesCached, 1);
    assert.deepEqual(again.data, { a: 1, b: 2 });
  });
});

Deno.test("every Worker entry of the project bundles (no graph falls back to blob modules)", async () => {
  const root = new URL("../", import.meta.url);
  const entries = [
    "aio/_worker.ts",
    "mainloop/_iothread_worker.ts",
    "ui/vnc/_encoder_worker.ts",
    "kvm/vcpu_backend.ts",
    "machine/pc_devices.ts",
    "machine/pci_devices.ts",
    "vm/virtio_backend.ts",
  ].map((e) => new URL(e, root).href);
  const prestart = ["vcpu/worker.ts", "kvm/vcpu_backend.ts", "machine/pc_devices.ts"]
    .map((e) => new URL(e, root).href);
  const worker = new URL("./worker_url.ts", import.meta.url).href;
  const code = `import { bundleRefusals, workerBundleUrl, workerUrl } from ${
    JSON.stringify(worker)
  };
const urls = ${JSON.stringify(entries)}.map((u) => workerUrl(u));
urls.push(workerBundleUrl(${JSON.stringify(prestart)}));
const kind = (u) => u.includes("#denovmm-bundle=") ? "bundle" : u.slice(0, 5);
console.log(JSON.stringify({ kinds: urls.map(kind), refusals: bundleRefusals() }));`;
  await withTempDir(async (cache) => {
    const out = JSON.parse(
      await runScript(code, ["--allow-ffi"], { env: { XDG_CACHE_HOME: cache } }),
    );
    assert.deepEqual(out.refusals, []);
    // Served bundles that export their entry name it; the prestart bundle exports nothing.
    assert.deepEqual(out.kinds, [...entries.map(() => "bundle"), "blob:"]);
  });
});

Deno.test("importBundled under --allow-ffi: one bundle, sharing the modules the isolate runs", async () => {
  const worker = new URL("./worker_url.ts", import.meta.url).href;
  const counter = new URL("./testdata/shared_counter.ts", import.meta.url).href;
  const entry = new URL("./testdata/bundled_entry.ts", import.meta.url).href;
  const code = `import { importBundled, servedModuleCounts } from ${JSON.stringify(worker)};
import { bump, count } from ${JSON.stringify(counter)};
bump();
const m = await importBundled(new URL(${JSON.stringify(entry)}), [Deno.mainModule]);
const { digest } = await m.lazy();
const c = servedModuleCounts();
console.log(JSON.stringify({ seen: m.seen, count, main: m.main, digest, bundles: c.bundlesBuilt + c.bundlesCached }));`;
  const cache = await Deno.makeTempDir({ prefix: "denovmm-wurl-cache-" });
  try {
    const env = { XDG_CACHE_HOME: cache };
    const sha1 = "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8";
    // Built, then read back from the cache: the same behaviour.
    for (let run = 0; run < 2; run++) {
      assert.deepEqual(JSON.parse(await runScript(code, ["--allow-ffi"], { env })), {
        seen: 2,
        count: 2,
        main: false,
        digest: sha1,
        bundles: 1,
      });
    }
    // A plain import() with read permission, and with bundles off.
    const plain = { seen: 2, count: 2, main: false, digest: sha1, bundles: 0 };
    assert.deepEqual(
      JSON.parse(await runScript(code, ["--allow-ffi", "--allow-read"], { env })),
      plain,
    );
    const off = { ...env, DENOVMM_NO_BUNDLE: "1" };
    assert.deepEqual(
      JSON.parse(await runScript(code, ["--allow-ffi", "--allow-read"], { env: off })),
      plain,
    );
    // Bundles off under --allow-ffi alone: the graph as blob: modules, which
    // run their own copy of the counter (so each side counts one bump).
    assert.deepEqual(JSON.parse(await runScript(code, ["--allow-ffi"], { env: off })), {
      ...plain,
      seen: 1,
      count: 1,
    });
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("a Worker runs its bundle from the cache file; a file changed under it is refused by name", async () => {
  const worker = new URL("./worker_url.ts", import.meta.url).href;
  const cacheMod = new URL("./module_cache.ts", import.meta.url).href;
  const fd = new URL("./fd.ts", import.meta.url).href;
  const echo = new URL("./testdata/echo_worker.ts", import.meta.url).href;
  const code = `import { workerUrl } from ${JSON.stringify(worker)};
import { writeCacheEntry } from ${JSON.stringify(cacheMod)};
import { readFileFfi } from ${JSON.stringify(fd)};
const served = workerUrl(${JSON.stringify(echo)});
const loader = await (await fetch(served.split("#")[0])).text();
const path = loader.match(/encode\\("([^"]+)" \\+/)[1];
const start = () => new Promise((res) => {
  const w = new Worker(served, { type: "module" });
  w.onmessage = (e) => { w.terminate(); res("started " + (e.data.tid > 0)); };
  w.onerror = (e) => { e.preventDefault(); w.terminate(); res("error " + e.message); };
});
const first = await start();
const file = new TextDecoder().decode(readFileFfi(path));
writeCacheEntry(path, [new TextEncoder().encode('{"changed":1}' + file.slice(file.indexOf("\\n")))]);
console.log(JSON.stringify({ small: loader.length < 4000, first, second: await start() }));`;
  await withTempDir(async (cache) => {
    const text = await runScript(code, ["--allow-ffi"], { env: { XDG_CACHE_HOME: cache } });
    // stdout, then stderr (where the Worker's error is reported too).
    const out = JSON.parse(text.slice(0, text.indexOf("}") + 1));
    assert.equal(out.small, true, "the Worker's module is the loader, not the bundle");
    assert.equal(out.first, "started true");
    assert.match(out.second, /^error .*module bundle .* changed while the VMM started/);
  });
});

Deno.test("importBundled of a graph the bundler refuses: blob: modules, refused once", async () => {
  const worker = new URL("./worker_url.ts", import.meta.url).href;
  const dep = new URL("./testdata/unbundled_dep.ts", import.meta.url).href;
  const code = `import { importBundled, servedModuleCounts } from ${JSON.stringify(worker)};
const m = await importBundled(new URL(${JSON.stringify(dep)}), [Deno.mainModule]);
console.log(JSON.stringify({ a: m.a, b: m.b, refused: servedModuleCounts().refused }));`;
  await withTempDir(async (cache) => {
    const out = JSON.parse(
      await runScript(code, ["--allow-ffi"], { env: { XDG_CACHE_HOME: cache } }),
    );
    assert.deepEqual(out, { a: 1, b: 2, refused: 1 });
  });
});
