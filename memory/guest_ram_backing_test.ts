import assert from "node:assert/strict";
import { GuestMemory } from "./guest_memory.ts";

function smapsOf(addr: bigint): string {
  const hex = addr.toString(16);
  const blocks = Deno.readTextFileSync("/proc/self/smaps").split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
  const b = blocks.find((x) => x.startsWith(hex + "-"));
  if (!b) throw new Error(`No mapping at 0x${hex}`);
  return b;
}

Deno.test("guest RAM is one 2 MiB-aligned anonymous mapping, huge pages where THP is always on", () => {
  const size = 8 << 20;
  const m = GuestMemory.allocate(size);
  try {
    const r = m.layout.regions[0];
    assert.equal(r.hostAddr % BigInt(2 << 20), 0n);
    const smaps = smapsOf(r.hostAddr);
    assert.match(smaps, new RegExp(`^Size:\\s+${size / 1024} kB`, "m"));
    // Anonymous, not shmem: no backing file on the mapping line.
    assert.match(smaps.split("\n")[0], /^[0-9a-f]+-[0-9a-f]+ rw-p 00000000 00:00 0\s*$/);
    const thp = Deno.readTextFileSync("/sys/kernel/mm/transparent_hugepage/enabled");
    if (thp.includes("[always]")) assert.match(smaps, /^THPeligible:\s+1/m);
    // Not MADV_HUGEPAGE (synchronous compaction on fault): no "hg" flag.
    assert.doesNotMatch(smaps, /^VmFlags:.*\bhg\b/m);
    assert.match(smaps, /^VmFlags:.*\bdc\b/m); // MADV_DONTFORK
  } finally {
    m.close();
  }
});
