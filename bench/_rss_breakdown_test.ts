// The memory bench's classes: each kind of mapping lands in its class.
import assert from "node:assert/strict";
import { classify, parseSmaps } from "./_rss_breakdown.ts";

const M = 1024; // KiB per MiB
function block(start: number, sizeKib: number, perms: string, name: string, rssKib: number) {
  const end = start + sizeKib * 1024;
  const hex = (n: number) => n.toString(16);
  return `${hex(start)}-${hex(end)} ${perms} 00000000 00:00 ${name ? 7 : 0} ${name}\n` +
    `Size: ${sizeKib} kB\nRss: ${rssKib} kB\nAnonymous: ${
      name ? 0 : rssKib
    } kB\nAnonHugePages: 0 kB`;
}

Deno.test("mappings are classed: binary, remapped builtins, arenas, stacks, V8 pages, guest RAM", () => {
  const exe = "/usr/bin/deno";
  const G = 2 ** 40;
  const text = [
    block(0x5555_0000_0000, 4 * M, "r-xp", exe, 3 * M),
    block(0x5555_0000_0000 + 4 * 2 ** 20, 8, "rw-p", exe, 8),
    block(0x5555_1000_0000, 1 * M, "rw-p", "[heap]", 512),
    block(G, 256 * M, "rw-p", "", 20 * M), // guest RAM: exactly its size
    block(2 * G, 2 * M, "r-xp", exe, 1 * M), // builtins remapped far away
    block(3 * G, 1 * M, "rw-p", "", 300), // arena: 64 MiB-aligned start...
    block(3 * G + 2 ** 20, 63 * M, "---p", "", 0), // ...the rest PROT_NONE
    block(4 * G, 4, "---p", "", 0), // guard page
    block(4 * G + 4096, 2 * M, "rw-p", "", 40), // its thread's stack
    block(5 * G, 256, "rw-p", "", 256), // a V8 page
    block(5 * G + 256 * 1024 + 4096, 12, "rw-p", "", 12), // other
  ].join("\n");
  const c = classify(parseSmaps(text), { guestRamKib: 256 * M, exe });
  const rss = (k: Parameters<typeof c.get>[0]) => c.get(k)!.rssKib;
  assert.equal(rss("guest RAM"), 20 * M);
  assert.equal(rss("deno binary: text and data (shared by all isolates)"), 3 * M + 8);
  assert.equal(rss("deno binary: builtins remapped per isolate"), 1 * M);
  assert.equal(rss("malloc: main arena ([heap])"), 512);
  assert.equal(rss("malloc: thread arenas (64 MiB heaps)"), 300);
  assert.equal(rss("thread stacks"), 40);
  assert.equal(rss("V8 heap and code pages (anonymous, 256 KiB-aligned)"), 256);
  assert.equal(rss("other anonymous memory"), 12);
});
