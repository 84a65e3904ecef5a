// What trim_memory drops: clean file pages only (never a writable mapping or
// one with private pages, where MADV_DONTNEED would lose data), and the
// process keeps running on the code whose pages it dropped.
import assert from "node:assert/strict";
import { cleanFileMappings, dropCleanFilePages, trimMalloc } from "./trim_memory.ts";

function statusKib(field: string): number {
  return Number(
    new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
      Deno.readTextFileSync("/proc/self/status"),
    )![1],
  );
}

Deno.test("only loaded ELF segments, read-only, without private pages, are chosen", () => {
  const smaps = [
    "1000-2000 r--p 00000000 fe:00 11 /usr/bin/deno\nRss: 8 kB\nAnonymous: 0 kB",
    "2000-3000 r-xp 00001000 fe:00 11 /usr/bin/deno\nRss: 8 kB\nAnonymous: 0 kB",
    // RELRO: read-only now, relocated before: private pages.
    "3000-4000 r--p 00002000 fe:00 11 /usr/bin/deno\nRss: 4 kB\nAnonymous: 4 kB",
    "4000-5000 rw-p 00003000 fe:00 11 /usr/bin/deno\nRss: 4 kB\nAnonymous: 0 kB",
    "5000-6000 rw-p 00000000 00:00 0 \nRss: 4 kB\nAnonymous: 4 kB",
    "6000-7000 r--p 00000000 00:00 0                          [vvar]\nRss: 4 kB\nAnonymous: 0 kB",
    // A database mapped shared, read-only: it may be unmapped any time.
    "7000-8000 r--s 00000000 fe:00 12 /tmp/v8_code_cache\nRss: 4 kB\nAnonymous: 0 kB",
    "8000-9000 rw-s 00000000 00:01 14 /memfd:guest-ram (deleted)\nRss: 4 kB\nAnonymous: 0 kB",
    "9000-a000 r--p 00000000 fe:00 15 /usr/lib/libm.so.6\nRss: 4 kB",
    "7f0000001000-7f0000002000 r--p 00000000 fe:00 13 /usr/lib/libc.so.6\nRss: 4 kB\nAnonymous: 0 kB",
    "7f0000002000-7f0000003000 r-xp 00001000 fe:00 13 /usr/lib/libc.so.6\nRss: 0 kB\nAnonymous: 0 kB",
    // V8's copy of its builtins for one isolate: far from the binary.
    "7f1000000000-7f1000001000 r-xp 035cf000 fe:00 11 /usr/bin/deno\nRss: 4 kB\nAnonymous: 0 kB",
  ].join("\n");
  assert.deepEqual(cleanFileMappings(smaps), [
    [0x1000n, 0x2000n],
    [0x2000n, 0x3000n],
    [0x7f0000001000n, 0x7f0000002000n],
  ]);
});

Deno.test("dropping clean file pages lowers RssFile, and code runs on", async () => {
  // Run code that touches the binary (a Worker: an isolate, its snapshot).
  const src = `postMessage([1, 2, 3].map((x) => x * 2).join(","));`;
  const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  const run = async () => {
    const w = new Worker(url, { type: "module" });
    const got = await new Promise((r) => (w.onmessage = (e) => r(e.data)));
    w.terminate();
    return got;
  };
  assert.equal(await run(), "2,4,6");
  trimMalloc();
  const before = statusKib("RssFile");
  const n = dropCleanFilePages();
  const after = statusKib("RssFile");
  assert.ok(n > 0, "some mappings dropped");
  assert.ok(before - after > 2048, `RssFile ${before} -> ${after} KiB`);
  // Everything faults back in as needed.
  assert.equal(await run(), "2,4,6");
  assert.equal(new Intl.NumberFormat("en-US").format(1234.5), "1,234.5");
  URL.revokeObjectURL(url);
});
