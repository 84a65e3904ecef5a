import assert from "node:assert/strict";
import { GuestMemory } from "../../memory/guest_memory.ts";
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "./constants.ts";
import { DescriptorChain, SplitQueue, VirtqueueError } from "./queue.ts";

const RAM = 0x10_0000;
const DESC = 0x1000;
const AVAIL = 0x2000;
const USED = 0x3000;
const SIZE = 8;

function rig(options: { indirect?: boolean; eventIdx?: boolean } = {}) {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(RAM));
  const q = new SplitQueue(mem, 256);
  q.configure({ size: SIZE, desc: DESC, avail: AVAIL, used: USED, ...options });
  const chain = new DescriptorChain(256);
  const desc = (i: number, addr: number, len: number, flags: number, next = 0, table = DESC) => {
    mem.writeU64(table + 16 * i, BigInt(addr));
    mem.writeU32(table + 16 * i + 8, len);
    mem.writeU16(table + 16 * i + 12, flags);
    mem.writeU16(table + 16 * i + 14, next);
  };
  let idx = 0;
  const offer = (head: number) => {
    mem.writeU16(AVAIL + 4 + 2 * (idx % SIZE), head);
    idx = (idx + 1) & 0xffff;
    mem.writeU16(AVAIL + 2, idx);
  };
  return { mem, q, chain, desc, offer };
}

Deno.test("pop flattens a chain with an indirect table", () => {
  const { q, chain, desc, offer } = rig({ indirect: true });
  desc(3, 0x8000, 16, VRING_DESC_F_NEXT, 5);
  desc(5, 0x9000, 64, VRING_DESC_F_INDIRECT);
  desc(0, 0xa000, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1, 0x9000);
  desc(1, 0xb000, 1, VRING_DESC_F_WRITE, 0, 0x9000);
  desc(2, 0, 0, 0, 0, 0x9000);
  desc(3, 0, 0, 0, 0, 0x9000);
  offer(3);
  assert.equal(q.pending(), 1);
  assert.ok(q.pop(chain));
  assert.equal(chain.head, 3);
  assert.equal(chain.count, 3);
  assert.equal(chain.readableCount, 1);
  assert.equal(chain.readableBytes, 16);
  assert.equal(chain.writableBytes, 513);
  assert.deepEqual([...chain.addr.subarray(0, 3)], [0x8000, 0xa000, 0xb000]);
  assert.equal(q.pop(chain), false);
  q.pushUsed(3, 513);
  assert.equal(q.usedIdx, 1);
});

Deno.test("guest-controlled ring values are validated", () => {
  const cases: [string, (r: ReturnType<typeof rig>) => void, RegExp][] = [
    ["head", (r) => r.offer(8), /head 8 out of range/],
    ["loop", (r) => {
      r.desc(0, 0x8000, 1, VRING_DESC_F_NEXT, 1);
      r.desc(1, 0x8000, 1, VRING_DESC_F_NEXT, 0);
      r.offer(0);
    }, /loops/],
    ["next", (r) => {
      r.desc(0, 0x8000, 1, VRING_DESC_F_NEXT, 9);
      r.offer(0);
    }, /next 9 out of range/],
    ["buffer", (r) => {
      r.desc(0, RAM - 4, 8, 0);
      r.offer(0);
    }, /outside guest RAM/],
    ["huge address", (r) => {
      r.desc(0, 2 ** 60, 8, 0);
      r.offer(0);
    }, /outside guest RAM/],
    ["order", (r) => {
      r.desc(0, 0x8000, 1, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
      r.desc(1, 0x8000, 1, 0);
      r.offer(0);
    }, /readable descriptor after a writable/],
    ["indirect without feature", (r) => {
      r.desc(0, 0x9000, 32, VRING_DESC_F_INDIRECT);
      r.offer(0);
    }, /Unexpected indirect/],
    ["avail jump", (r) => r.mem.writeU16(AVAIL + 2, SIZE + 1), /moved 9 entries/],
  ];
  for (const [name, setup, re] of cases) {
    const r = rig();
    setup(r);
    assert.throws(
      () => r.q.pop(r.chain),
      (e: Error) => e instanceof VirtqueueError && re.test(e.message),
      name,
    );
  }
  const r = rig({ indirect: true });
  r.desc(0, 0x9000, 24, VRING_DESC_F_INDIRECT);
  r.offer(0);
  assert.throws(() => r.q.pop(r.chain), /indirect table length 24/);
  const r2 = rig({ indirect: true });
  r2.desc(0, 0x9000, 32, VRING_DESC_F_INDIRECT);
  r2.desc(0, 0x9000, 32, VRING_DESC_F_INDIRECT, 0, 0x9000);
  r2.offer(0);
  assert.throws(() => r2.q.pop(r2.chain), /Unexpected indirect/);
});

Deno.test("configure rejects bad sizes and ring addresses", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(RAM));
  const q = new SplitQueue(mem, 256);
  for (
    const c of [
      { size: 3, desc: DESC, avail: AVAIL, used: USED },
      { size: 512, desc: DESC, avail: AVAIL, used: USED },
      { size: 0, desc: DESC, avail: AVAIL, used: USED },
      { size: 8, desc: DESC + 8, avail: AVAIL, used: USED },
      { size: 8, desc: DESC, avail: AVAIL + 1, used: USED },
      { size: 8, desc: DESC, avail: AVAIL, used: USED + 2 },
      { size: 8, desc: RAM - 64, avail: AVAIL, used: USED },
      { size: 8, desc: DESC, avail: AVAIL, used: RAM - 8 },
    ]
  ) {
    assert.throws(() => q.configure(c), VirtqueueError, JSON.stringify(c));
    assert.equal(q.ready, false);
  }
});

Deno.test("EVENT_IDX: interrupts only when used_event is crossed", () => {
  const { mem, q } = rig({ eventIdx: true });
  q.pushUsed(0, 0);
  assert.equal(q.needsInterrupt(), true); // first time
  mem.writeU16(AVAIL + 4 + 2 * SIZE, 3); // used_event = 3
  q.pushUsed(0, 0); // idx 2
  assert.equal(q.needsInterrupt(), false);
  q.pushUsed(0, 0); // 3
  q.pushUsed(0, 0); // 4: crossed 3
  assert.equal(q.needsInterrupt(), true);
  assert.equal(q.needsInterrupt(), false); // nothing new
  assert.equal(q.enableNotification(), false);
  assert.equal(mem.readU16(USED + 4 + 8 * SIZE), 0); // avail_event = lastAvail
});

Deno.test("a queue reconfigured elsewhere serves the new rings, and a reset one nothing", () => {
  const { mem, q, chain, desc, offer } = rig();
  desc(0, 0x8000, 32, 0);
  offer(0);
  assert.ok(q.pop(chain));
  q.pushUsed(0, 0);
  // The driver moves the rings (a reset and a new layout): nothing of the
  // old ones may be read or written any more.
  q.reset();
  assert.equal(q.pending(), 0);
  assert.equal(q.pop(chain), false);
  const [desc2, avail2, used2] = [0x5000, 0x6000, 0x7000];
  mem.writeU16(used2 + 2, 0);
  q.configure({ size: 4, desc: desc2, avail: avail2, used: used2 });
  offer(0); // into the old avail ring: not seen
  assert.equal(q.pending(), 0);
  mem.writeU64(desc2 + 16 * 2, 0x9000n);
  mem.writeU32(desc2 + 16 * 2 + 8, 48);
  mem.writeU16(desc2 + 16 * 2 + 12, VRING_DESC_F_WRITE);
  mem.writeU16(avail2 + 4, 2);
  mem.writeU16(avail2 + 2, 1);
  assert.equal(q.pending(), 1);
  assert.ok(q.pop(chain));
  assert.deepEqual([chain.head, chain.addr[0], chain.len[0], chain.writableBytes], [
    2,
    0x9000,
    48,
    48,
  ]);
  const oldUsed = mem.slice(USED, 16).slice();
  q.pushUsed(2, 40);
  assert.deepEqual(mem.slice(USED, 16), oldUsed, "the old used ring is untouched");
  assert.equal(mem.readU16(used2 + 2), 1);
  assert.deepEqual([mem.readU32(used2 + 4), mem.readU32(used2 + 8)], [2, 40]);
  // avail_event (EVENT_IDX off: the NO_NOTIFY flag) lands in the new used ring.
  q.disableNotification();
  assert.equal(mem.readU16(used2) & 1, 1);
  assert.equal(q.enableNotification(), false);
  assert.equal(mem.readU16(used2) & 1, 0);
});

Deno.test("indirect tables read the same at any address, and their values are validated", () => {
  // 16-, 4- and 2-aligned tables (drivers align them; a guest need not).
  for (const table of [0x9000, 0x9004, 0x9002]) {
    const { q, chain, desc, offer } = rig({ indirect: true });
    // Six entries, walked 0 -> 5 -> 1 (every field of every entry is read).
    desc(0, table, 96, VRING_DESC_F_INDIRECT);
    desc(0, 0xa000, 16, VRING_DESC_F_NEXT, 5, table);
    desc(5, 0xb000, 4096, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1, table);
    desc(1, 0xc000, 1, VRING_DESC_F_WRITE, 0, table);
    offer(0);
    assert.ok(q.pop(chain), `table at ${table.toString(16)}`);
    assert.deepEqual(
      [chain.count, chain.readableCount, chain.readableBytes, chain.writableBytes],
      [3, 1, 16, 4097],
    );
    assert.deepEqual([...chain.addr.subarray(0, 3)], [0xa000, 0xb000, 0xc000]);
    assert.deepEqual([...chain.len.subarray(0, 3)], [16, 4096, 1]);
    const bad: [string, (r: ReturnType<typeof rig>) => void, RegExp][] = [
      ["next out of range", (r) => r.desc(0, 0xa000, 16, VRING_DESC_F_NEXT, 3, table), /next 3/],
      ["loop", (r) => {
        r.desc(0, 0xa000, 16, VRING_DESC_F_NEXT, 1, table);
        r.desc(1, 0xa000, 16, VRING_DESC_F_NEXT, 0, table);
      }, /loops/],
      ["outside RAM", (r) => r.desc(0, RAM - 8, 16, 0, 0, table), /outside guest RAM/],
      ["high address", (r) => r.desc(0, 2 ** 53, 16, 0, 0, table), /outside guest RAM/],
      ["nested", (r) => r.desc(0, 0x9000, 16, VRING_DESC_F_INDIRECT, 0, table), /Unexpected/],
    ];
    for (const [name, write, re] of bad) {
      const r = rig({ indirect: true });
      r.desc(0, table, 48, VRING_DESC_F_INDIRECT);
      write(r);
      r.offer(0);
      assert.throws(
        () => r.q.pop(r.chain),
        (e: Error) => e instanceof VirtqueueError && re.test(e.message),
        `${name} at ${table.toString(16)}`,
      );
    }
  }
});

Deno.test("random indirect tables: the same chain or error at 16-, 2- and 4-aligned addresses", () => {
  // A small deterministic PRNG (xorshift32), so a failure repeats.
  let x = 0x9e3779b9;
  const rnd = (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  const outcome = (table: number, entries: number[][]) => {
    const r = rig({ indirect: true });
    r.desc(0, table, 16 * entries.length, VRING_DESC_F_INDIRECT);
    entries.forEach(([addr, len, flags, next], i) => r.desc(i, addr, len, flags, next, table));
    r.offer(0);
    try {
      r.q.pop(r.chain);
      const c = r.chain;
      return JSON.stringify([
        c.count,
        c.readableCount,
        c.readableBytes,
        c.writableBytes,
        [...c.addr.subarray(0, c.count)],
        [...c.len.subarray(0, c.count)],
      ]);
    } catch (e) {
      assert.ok(e instanceof VirtqueueError, String(e));
      return e.message;
    }
  };
  let popped = 0;
  const refused = new Set<string>();
  for (let round = 0; round < 400; round++) {
    const n = 1 + rnd(8);
    const entries: number[][] = [];
    for (let i = 0; i < n; i++) {
      const addr = rnd(4) === 0 ? rnd(2 * RAM) : 0x20000 + rnd(0x40000);
      const len = rnd(3) === 0 ? rnd(0x20000) : 1 + rnd(4096);
      const flags = (rnd(4) !== 0 ? VRING_DESC_F_NEXT : 0) | (rnd(2) ? VRING_DESC_F_WRITE : 0) |
        (rnd(16) === 0 ? VRING_DESC_F_INDIRECT : 0);
      const next = rnd(5) === 0 ? rnd(2 * n) : (i + 1) % n;
      entries.push([addr, len, flags, next]);
    }
    const aligned = outcome(0x9000, entries);
    assert.equal(outcome(0x9002, entries), aligned, `round ${round}`);
    assert.equal(outcome(0x9004, entries), aligned, `round ${round}`);
    if (aligned.startsWith("[")) popped++;
    else refused.add(aligned.replace(/\d+|0x[0-9a-f]+/g, "N"));
  }
  // Both kinds were exercised: chains popped, and each kind of violation.
  assert.ok(popped > 40, `${popped} chains popped`);
  assert.ok(refused.size >= 4, [...refused].join("; "));
});
