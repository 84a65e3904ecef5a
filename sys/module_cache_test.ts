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
