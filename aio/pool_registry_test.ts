import assert from "node:assert/strict";
import { MainLoop } from "../mainloop/main_loop.ts";
import { closeFd, O_RDONLY, openFile } from "../sys/fd.ts";
import { acquireAio } from "./pool_registry.ts";
import type { ThreadPool } from "./thread_pool.ts";

Deno.test("disks on one loop share one lazily started pool; the last release closes it", async () => {
  const loop = new MainLoop();
  const other = new MainLoop();
  const running = loop.run();
  const zero = openFile("/dev/zero", O_RDONLY);
  try {
    const disks = Array.from({ length: 10 }, () => acquireAio(loop, "threads"));
    const pool = disks[0].backend as ThreadPool;
    assert.ok(disks.every((d) => d.backend === pool), "one pool for the loop");
    const elsewhere = acquireAio(other, "threads");
    assert.notEqual(elsewhere.backend, pool, "another loop has its own");
    await elsewhere.release();
    assert.equal(pool.spawned, 0, "no thread before the first request");
    const buf = new Uint8Array(16).fill(1);
    const r = await new Promise((done) => pool.submit({ op: "pread", fd: zero, buf }, done));
    assert.equal(r, 16);
    assert.ok(pool.spawned >= 1);
    for (const d of disks.slice(1)) await d.release();
    await disks[1].release(); // twice: no effect
    assert.ok(pool.submit({ op: "pread", fd: zero, buf }, () => {}) >= 0, "still open");
    await disks[0].release();
    assert.throws(() => pool.submit({ op: "pread", fd: zero, buf }, () => {}), /closed/);
    const again = acquireAio(loop, "threads");
    assert.notEqual(again.backend, pool, "a fresh pool after the last release");
    await again.release();
  } finally {
    closeFd(zero);
    loop.stop();
    await running;
    loop.close();
    other.close();
  }
});
