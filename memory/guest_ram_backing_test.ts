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

Deno.test("guest RAM from 64 MiB lives in a SharedArrayBuffer that no isolate counts as external memory", async () => {
  const size = 64 << 20;
  const external0 = Deno.memoryUsage().external;
  const m = GuestMemory.allocate(size);
  const w = new Worker(
    `data:text/javascript,import{GuestMemory}from"${
      new URL("./guest_memory.ts", import.meta.url).href
    }";self.onmessage=(e)=>{const external0=Deno.memoryUsage().external;` +
      `const v=GuestMemory.fromLayout(e.data);v.writeU32(0x1000,v.readU32(0x2000)+1);` +
      `self.postMessage(Deno.memoryUsage().external-external0)}`,
    { type: "module" },
  );
  try {
    assert.ok(m.layout.shared instanceof SharedArrayBuffer);
    // What made V8 collect garbage at start-up: 64 MiB of external memory per isolate.
    assert.ok(Deno.memoryUsage().external - external0 < 1 << 20, "counted as external memory");
    const r = m.layout.regions[0];
    assert.equal(r.hostAddr % BigInt(2 << 20), 0n);
    const smaps = smapsOf(r.hostAddr);
    assert.match(smaps, new RegExp(`^Size:\\s+${size / 1024} kB`, "m"));
    assert.match(smaps, /^VmFlags:.*\bdc\b/m); // MADV_DONTFORK
    m.writeU32(0x2000, 41);
    const grew = await new Promise<number>((res) => {
      w.onmessage = (e) => res(e.data);
      w.postMessage(m.layout);
    });
    assert.equal(m.readU32(0x1000), 42, "the Worker's view is the same memory");
    assert.ok(grew < 1 << 20, `the Worker counted ${grew} bytes as external memory`);
  } finally {
    w.terminate();
    m.close();
  }
  assert.throws(() => m.readU32(0x1000));
  // The pages went back, and a late access through a stale view would fault.
  assert.match(smapsOf(m.layout.regions[0].hostAddr).split("\n")[0], /^[0-9a-f]+-[0-9a-f]+ ---p /);
  assert.match(smapsOf(m.layout.regions[0].hostAddr), /^Rss:\s+0 kB/m);
});

Deno.test("shared guest RAM closed is reused, zeroed, by the next of its size", () => {
  const size = 64 << 20;
  const a = GuestMemory.allocate(size);
  a.writeU32(0x3000, 7);
  const addr = a.layout.regions[0].hostAddr;
  a.close();
  const maps = Deno.readTextFileSync("/proc/self/maps").split("\n").length;
  const b = GuestMemory.allocate(size);
  try {
    assert.equal(b.layout.regions[0].hostAddr, addr, "a new buffer, not the closed one");
    assert.equal(b.readU32(0x3000), 0);
    b.writeU32(0x3000, 9);
    assert.equal(Deno.readTextFileSync("/proc/self/maps").split("\n").length, maps);
  } finally {
    b.close();
  }
  const c = GuestMemory.allocate(size + (2 << 20));
  try {
    assert.notEqual(c.layout.regions[0].hostAddr, addr, "another size takes a buffer of its own");
  } finally {
    c.close();
  }
});
