import assert from "node:assert/strict";
import { sourceStamp, writeCacheEntryOnPool } from "./module_cache.ts";

Deno.test("a file's stamp holds while it is untouched and moves on any rewrite, even of the same bytes with its old times", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-stamp-" });
  try {
    const path = `${dir}/m.ts`;
    await Deno.writeTextFile(path, "export const a = 1;\n");
    const { mtime, atime } = await Deno.stat(path);
    const first = sourceStamp(path);
    assert.equal(sourceStamp(path), first);
    // Linux file times are coarse (a few ms): let them move.
    await new Promise((r) => setTimeout(r, 30));
    await Deno.writeTextFile(path, "export const a = 1;\n");
    await Deno.utime(path, atime!, mtime!); // as `touch -r` or a tar extraction would
    assert.equal((await Deno.stat(path)).mtime?.getTime(), mtime?.getTime());
    assert.notEqual(sourceStamp(path), first, "the change time moved");
    assert.throws(() => sourceStamp(`${dir}/absent.ts`), /ENOENT/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the cache directory is made with its missing parents (XDG_CACHE_HOME not created yet), each 0700", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-xdg-" });
  try {
    const base = `${dir}/not/yet/there`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { privateCacheDir } from ${
          JSON.stringify(new URL("./module_cache.ts", import.meta.url).href)
        };
console.log(privateCacheDir("kernels"));`,
      ],
      // DENO_DIR set, or Deno would make its own cache under XDG_CACHE_HOME first.
      env: { XDG_CACHE_HOME: base, DENO_DIR: `${dir}/deno` },
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout).trim(), `${base}/denovmm/kernels`);
    for (const p of [`${dir}/not`, `${dir}/not/yet`, base, `${base}/denovmm/kernels`]) {
      assert.equal((await Deno.stat(p)).mode! & 0o777, 0o700, p);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an entry written on the pool holds every part at its place, or is not there at all", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-cache-pool-" });
  try {
    // Short parts at once, long ones on the pool, in the order given: the
    // long part between short ones is where a mixed write(2) would go wrong.
    const big = new Uint8Array(32 << 20);
    for (let i = 0; i < big.length; i += 4096) big[i] = i >> 12;
    const parts = [new Uint8Array([1, 2, 3]), big, new Uint8Array(2), new Uint8Array(70).fill(9)];
    let turned = false;
    setTimeout(() => turned = true, 0);
    assert.equal(await writeCacheEntryOnPool(`${dir}/e`, parts), true);
    const got = await Deno.readFile(`${dir}/e`);
    const want = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      want.set(p, at);
      at += p.length;
    }
    assert.deepEqual(got, want);
    assert.equal(Deno.statSync(`${dir}/e`).mode! & 0o777, 0o600);
    assert.ok(turned, "the caller's loop turned while the long part was written");
    // A directory it cannot write: no entry, and no temporary file left.
    assert.equal(await writeCacheEntryOnPool(`${dir}/missing/e`, parts), false);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["e"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the module cache stays within its bound: a store removes the entries least recently used; a hit marks its entry, at most hourly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-jsbound-" });
  try {
    const script = `
import assert from "node:assert/strict";
import { cachedBundle, MODULE_CACHE_BYTES, storeBundle } from ${
      JSON.stringify(new URL("./module_cache.ts", import.meta.url).href)
    };
assert.equal(MODULE_CACHE_BYTES, 32 << 20);
const js = Deno.env.get("XDG_CACHE_HOME") + "/denovmm/js";
const a = storeBundle("a", { modules: [], text: "A" });
// Other checkouts' entries, 20 x 2 MiB last used in 2020, one second apart;
// a writer's temporary file, older still; the bundle "a" last used between old5 and old6.
for (let i = 0; i < 20; i++) {
  Deno.writeFileSync(js + "/old" + i + ".js", new Uint8Array(2 << 20));
  Deno.utimeSync(js + "/old" + i + ".js", 1.6e9 + i, 1.6e9 + i);
}
Deno.writeFileSync(js + "/x.js.1.abc.tmp", new Uint8Array(2 << 20));
Deno.utimeSync(js + "/x.js.1.abc.tmp", 1.5e9, 1.5e9);
Deno.utimeSync(a.path, 1.6e9 + 5.5, 1.6e9 + 5.5);
// A hit on an entry marked over an hour ago marks it now; a second hit writes nothing.
assert.equal(cachedBundle("a")?.text, "A");
const marked = Deno.statSync(a.path).mtime.getTime();
assert.ok(marked > Date.now() - 60_000, "marked used");
await new Promise((r) => setTimeout(r, 20));
assert.equal(cachedBundle("a")?.text, "A");
assert.equal(Deno.statSync(a.path).mtime.getTime(), marked, "no second mark within the hour");
// Storing another bundle cuts the directory to 32 MiB, oldest first.
storeBundle("b", { modules: [], text: "B" });
const left = [...Deno.readDirSync(js)].map((e) => e.name).sort();
for (let i = 0; i < 5; i++) assert.ok(!left.includes("old" + i + ".js"), "old" + i + " removed");
for (let i = 5; i < 20; i++) assert.ok(left.includes("old" + i + ".js"), "old" + i + " kept");
assert.ok(left.includes("x.js.1.abc.tmp"), "a temporary file is no entry");
assert.equal(cachedBundle("a")?.text, "A");
assert.equal(cachedBundle("b")?.text, "B");
const total = left.filter((n) => n.endsWith(".js")).reduce((n, f) => n + Deno.statSync(js + "/" + f).size, 0);
assert.ok(total <= MODULE_CACHE_BYTES, String(total));
`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      env: { XDG_CACHE_HOME: dir, DENO_DIR: `${dir}/deno` },
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
