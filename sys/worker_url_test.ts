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

/**
 * A script that serves `target`'s graph as Workers get it, starts it, and
 * prints where its modules came from, the Worker's first message and the
 * served graph's text (blob URLs replaced by their order of appearance).
 */
function serveScript(target: string): string {
  const workerUrl = new URL("./worker_url.ts", import.meta.url).href;
  return `import { servedModuleCounts, workerUrl } from ${JSON.stringify(workerUrl)};
const served = workerUrl(${JSON.stringify(target)});
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
  console.log(JSON.stringify({ counts: servedModuleCounts(), data: e.data, all }));
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
    assert.deepEqual(second.counts, { cached: first.counts.transpiled, transpiled: 0 });
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
    assert.deepEqual(first.counts, { cached: 0, transpiled: 2 });
    assert.equal(first.data.value, 1);
    await Deno.writeTextFile(`${dir}/src/dep.ts`, dep(2));
    const second = JSON.parse(await runScript(code, ["--allow-ffi"], { env }));
    assert.deepEqual(second.counts, { cached: 1, transpiled: 1 });
    assert.equal(second.data.value, 2);
    // One entry per module, replaced in place.
    assert.equal([...Deno.readDirSync(`${dir}/cache/denovmm/js`)].length, 2);
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
  assert.deepEqual(out.counts, { cached: 0, transpiled: 0 });
});
