import assert from "node:assert/strict";
import { sourceStamp } from "./module_cache.ts";

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
