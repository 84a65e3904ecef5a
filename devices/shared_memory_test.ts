import assert from "node:assert/strict";
import { BigLock } from "./big_lock.ts";
import { checkRegion, SharedLayout } from "./shared_region.ts";

Deno.test("BigLock is re-entrant for its owner and tracks the owner token", () => {
  const sab = new SharedArrayBuffer(BigLock.BYTES);
  const a = new BigLock({ sab, offset: 0 });
  const b = new BigLock(a.state);
  assert.notEqual(a.token, b.token);
  a.lock();
  a.lock();
  assert.equal(a.held, true);
  assert.equal(a.owner, a.token);
  assert.equal(b.tryLock(), false);
  a.unlock();
  assert.equal(b.tryLock(), false);
  a.unlock();
  assert.equal(a.locked, false);
  assert.equal(a.owner, 0);
  assert.equal(b.tryLock(), true);
  assert.equal(b.owner, b.token);
  b.unlock();
  assert.throws(() => b.unlock(), /does not hold/);
  assert.equal(a.with(() => 7), 7);
  assert.equal(a.locked, false);
});

Deno.test("BigLock rejects misplaced words", () => {
  const sab = new SharedArrayBuffer(16);
  assert.throws(() => new BigLock({ sab, offset: 2 }), RangeError);
  assert.throws(() => new BigLock({ sab, offset: 8 }), RangeError);
});

Deno.test("BigLock serialises Workers doing read-modify-write on shared memory", async () => {
  const sab = new SharedArrayBuffer(64);
  const lockUrl = new URL("./big_lock.ts", import.meta.url).href;
  const code = `
    import { BigLock } from ${JSON.stringify(lockUrl)};
    self.onmessage = (e) => {
      const { sab, n } = e.data;
      const lock = new BigLock({ sab, offset: 0 });
      const counter = new Int32Array(sab, 16, 1);
      const ready = new Int32Array(sab, 32, 2);
      // Start together, so the critical sections really overlap.
      Atomics.add(ready, 0, 1);
      while (Atomics.load(ready, 0) < 3) Atomics.wait(ready, 1, 0, 1);
      for (let i = 0; i < n; i++) {
        lock.lock();
        const v = counter[0];
        // widen the race window with real memory traffic
        for (let j = 0; j < 30; j++) Atomics.load(ready, 1);
        counter[0] = v + 1;
        lock.unlock();
      }
      self.postMessage("done");
    };`;
  const url = URL.createObjectURL(new Blob([code], { type: "application/javascript" }));
  const n = 4000;
  const workers = [0, 1, 2].map(() => new Worker(url, { type: "module" }));
  try {
    await Promise.all(workers.map((w) =>
      new Promise<void>((resolve, reject) => {
        w.onmessage = () => resolve();
        w.onerror = (e) => reject(e);
        w.postMessage({ sab, n });
      })
    ));
  } finally {
    for (const w of workers) w.terminate();
    URL.revokeObjectURL(url);
  }
  assert.equal(new Int32Array(sab, 16, 1)[0], 3 * n);
  assert.equal(new Int32Array(sab, 0, 1)[0], 0);
});

Deno.test("SharedLayout aligns regions and checkRegion validates them", () => {
  const layout = new SharedLayout();
  assert.equal(layout.reserve(BigLock.BYTES, 4), 0);
  assert.equal(layout.reserve(10), 16);
  assert.equal(layout.reserve(3, 4), 28);
  assert.equal(layout.size, 31);
  const sab = layout.allocate();
  assert.equal(sab.byteLength, 32);
  assert.throws(() => layout.reserve(0), RangeError);
  assert.throws(() => layout.reserve(4, 3), RangeError);
  assert.doesNotThrow(() => checkRegion({ sab, offset: 16, length: 10 }, 10));
  assert.throws(() => checkRegion({ sab, offset: 16, length: 10 }, 11), RangeError);
  assert.throws(() => checkRegion({ sab, offset: 4, length: 4 }, 4), RangeError);
  assert.throws(() => checkRegion({ sab, offset: 24, length: 16 }, 16), RangeError);
});
