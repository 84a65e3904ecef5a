import assert from "node:assert/strict";
import { entriesToEvict, evictLeastRecentlyUsed, markUsed } from "./cache_eviction.ts";
import { closeFd, O_CLOEXEC, O_RDONLY, openFile } from "./fd.ts";

const e = (name: string, size: number, usedMs: number) => ({ name, size, usedMs });

Deno.test("the least recently used entries go first until the rest fit; the one just written stays", () => {
  const entries = [e("c", 40, 3), e("a", 40, 1), e("b", 40, 2), e("d", 40, 4)];
  assert.deepEqual(entriesToEvict(entries, 160), []);
  assert.deepEqual(entriesToEvict(entries, 159), ["a"]);
  assert.deepEqual(entriesToEvict(entries, 80), ["a", "b"]);
  // The entry just written is never removed, even the oldest or alone over the limit.
  assert.deepEqual(entriesToEvict(entries, 80, "a"), ["b", "c"]);
  assert.deepEqual(entriesToEvict(entries, 10, "b"), ["a", "c", "d"]);
  assert.deepEqual(entriesToEvict(entries, 0), ["a", "b", "c", "d"]);
  // A large entry used recently outlives small old ones, as LRU has it.
  assert.deepEqual(entriesToEvict([e("old", 1, 1), e("big", 100, 2)], 100), ["old"]);
  // Equal times: by name, not by the order the directory listed them in.
  assert.deepEqual(entriesToEvict([e("y", 5, 1), e("x", 5, 1)], 5), ["x"]);
  assert.deepEqual(entriesToEvict([], 0), []);
});

Deno.test("a cache directory is cut to its bound by use; other files and temporaries are not entries", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-evict-" });
  try {
    const write = (name: string, size: number, usedS: number) => {
      Deno.writeFileSync(`${dir}/${name}`, new Uint8Array(size));
      Deno.utimeSync(`${dir}/${name}`, usedS, usedS);
    };
    write("a.kernel", 1000, 1_000_000);
    write("b.kernel", 1000, 2_000_000);
    write("c.kernel", 1000, 3_000_000);
    write("c.kernel.123.x.tmp", 5000, 1); // a writer's temporary
    write("notes.txt", 5000, 1);
    Deno.mkdirSync(`${dir}/d.kernel`); // not a regular file
    Deno.symlinkSync(`${dir}/notes.txt`, `${dir}/e.kernel`);

    // a is booted again: now the most recently used.
    const fd = openFile(`${dir}/a.kernel`, O_RDONLY | O_CLOEXEC);
    try {
      assert.equal(markUsed(fd), true);
    } finally {
      closeFd(fd);
    }
    assert.ok(Deno.statSync(`${dir}/a.kernel`).mtime!.getTime() > 3_000_000_000);

    assert.deepEqual(evictLeastRecentlyUsed(dir, ".kernel", 2500), ["b.kernel"]);
    assert.deepEqual(evictLeastRecentlyUsed(dir, ".kernel", 2500), []);
    assert.deepEqual(evictLeastRecentlyUsed(dir, ".kernel", 0, "c.kernel"), ["a.kernel"]);
    const left = [...Deno.readDirSync(dir)].map((x) => x.name).sort();
    assert.deepEqual(left, ["c.kernel", "c.kernel.123.x.tmp", "d.kernel", "e.kernel", "notes.txt"]);
    assert.deepEqual(evictLeastRecentlyUsed(`${dir}/missing`, ".kernel", 0), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
