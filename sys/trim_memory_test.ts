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

Deno.test("only read-only file mappings without private pages are chosen", () => {
  const smaps = [
    "1000-2000 r-xp 00000000 fe:00 11 /usr/bin/deno\nRss: 8 kB\nAnonymous: 0 kB",
    // RELRO: read-only now, relocated before: private pages.
    "2000-3000 r--p 00001000 fe:00 11 /usr/bin/deno\nRss: 4 kB\nAnonymous: 4 kB",
    "3000-4000 rw-p 00002000 fe:00 11 /usr/bin/deno\nRss: 4 kB\nAnonymous: 0 kB",
    "4000-5000 r--s 00000000 fe:00 12 /tmp/v8_code_cache\nRss: 4 kB\nAnonymous: 0 kB",
    "5000-6000 rw-p 00000000 00:00 0 \nRss: 4 kB\nAnonymous: 4 kB",
    "6000-7000 r--p 00000000 00:00 0                          [vvar]\nRss: 4 kB\nAnonymous: 0 kB",
    "7000-8000 r-xp 00000000 fe:00 13 /usr/lib/libc.so.6\nRss: 0 kB\nAnonymous: 0 kB",
    "8000-9000 rw-s 00000000 00:01 14 /memfd:guest-ram (deleted)\nRss: 4 kB\nAnonymous: 0 kB",
    "9000-a000 r--p 00000000 fe:00 15 /usr/lib/libm.so.6\nRss: 4 kB",
  ].join("\n");
  assert.deepEqual(cleanFileMappings(smaps), [[0x1000n, 0x2000n], [0x4000n, 0x5000n]]);
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
