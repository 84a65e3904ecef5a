import assert from "node:assert/strict";
import { closeFd, O_RDONLY, O_RDWR, openFile } from "../sys/fd.ts";
import { ThreadPool } from "./thread_pool.ts";
import type { MainLoop } from "../mainloop/main_loop.ts";
import { backendSuite, run, tempFile, withBackend } from "./testdata/backend_suite.ts";

backendSuite("threads", (loop) => new ThreadPool(loop, { maxThreads: 8 }));

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(pred: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("Condition not met in time");
    await sleep(1);
  }
}

Deno.test("threads: cancel succeeds while queued and fails while running", async () => {
  const zero = openFile("/dev/zero", O_RDONLY);
  let pool: ThreadPool | null = null;
  try {
    await withBackend(
      (loop) => (pool = new ThreadPool(loop, { minThreads: 1, maxThreads: 1 })),
      async (b) => {
        const p = pool!;
        await until(() => p.idleThreads === 1);
        const big = new Uint8Array(256 << 20); // ~30 ms of copying
        const small = new Uint8Array(16);
        const results: number[] = [];
        const ha = p.submit({ op: "pread", fd: zero, offset: 0, buf: big }, (r) => results.push(r));
        const hb = p.submit(
          { op: "pread", fd: zero, offset: 0, buf: small },
          (r) => results.push(r),
        );
        await until(() => p.queued === 1); // A taken, B still waiting behind it
        assert.equal(b.cancel(hb), true);
        assert.equal(b.cancel(hb), false);
        assert.equal(b.cancel(ha), false);
        await until(() => results.length === 2);
        assert.deepEqual(results, [-125, 256 << 20]); // ECANCELED first: it completes at once
        assert.equal(b.inFlight, 0);
      },
    );
  } finally {
    closeFd(zero);
  }
});

Deno.test("threads: threads are named aio-N and idle ones exit", async () => {
  let pool: ThreadPool | null = null;
  const { path } = await tempFile(4096);
  const fd = openFile(path, O_RDONLY);
  try {
    await withBackend(
      (loop) => (pool = new ThreadPool(loop, { maxThreads: 4, idleTimeoutMs: 1000 })),
      async (b) => {
        const p = pool!;
        assert.equal(p.threads, 0);
        const bufs = Array.from({ length: 16 }, () => new Uint8Array(4096));
        const rs = await Promise.all(
          bufs.map((buf) => run(b, { op: "pread", fd, offset: 0, buf })),
        );
        assert.ok(rs.every((r) => r === 4096));
        assert.ok(p.spawned >= 1 && p.spawned <= 4, `spawned ${p.spawned}`);
        const names = await Deno.readDir(`/proc/self/task`);
        const comms: string[] = [];
        for await (const t of names) {
          // A thread may exit between the listing and the read.
          const comm = await Deno.readTextFile(`/proc/self/task/${t.name}/comm`).catch(() => "");
          comms.push(comm.trim());
        }
        assert.ok(comms.some((c) => /^aio-\d+$/.test(c)), `threads: ${comms.join(",")}`);
        await until(() => p.threads === 0);
        // Still usable after shrinking to nothing.
        assert.equal(await run(b, { op: "pread", fd, offset: 0, buf: bufs[0] }), 4096);
      },
    );
  } finally {
    closeFd(fd);
    await Deno.remove(path);
  }
});

Deno.test("threads: no request is lost or completed twice while the pool grows and shrinks", async () => {
  let pool: ThreadPool | null = null;
  const { path, data } = await tempFile(65536, 3);
  const fd = openFile(path, O_RDWR);
  try {
    const factory = (
      loop: MainLoop,
    ) => (pool = new ThreadPool(loop, { maxThreads: 4, idleTimeoutMs: 5 }));
    await withBackend(factory, async (b) => {
      const WAVES = 5, PER = 400;
      const counts = new Int32Array(WAVES * PER);
      const pending: Promise<void>[] = [];
      for (let i = 0; i < counts.length; i++) {
        const buf = new Uint8Array(64);
        const offset = (i * 64) % 65536;
        pending.push(
          new Promise<void>((resolve) => {
            b.submit({ op: "pread", fd, offset, buf }, (r) => {
              counts[i]++;
              assert.equal(r, 64);
              assert.deepEqual(buf, data.subarray(offset, offset + 64));
              resolve();
            });
          }),
        );
        // Small bursts within a wave; between waves every thread times out.
        if (i % 50 === 49) await sleep(0);
        if (i % PER === PER - 1) await until(() => pool!.inFlight === 0 && pool!.threads === 0);
      }
      await Promise.all(pending);
      await sleep(20);
      assert.ok(counts.every((c) => c === 1), "a request completed other than once");
      assert.ok(pool!.spawned >= WAVES, `pool never regrew (${pool!.spawned})`);
    });
  } finally {
    closeFd(fd);
    await Deno.remove(path);
  }
});

Deno.test("threads: options are validated and a full queue says so", async () => {
  await withBackend((loop) => {
    assert.throws(() => new ThreadPool(loop, { queueSize: 3 }), RangeError);
    assert.throws(() => new ThreadPool(loop, { maxThreads: 0 }), RangeError);
    assert.throws(() => new ThreadPool(loop, { minThreads: -1 }), RangeError);
    return new ThreadPool(loop, { queueSize: 2, maxThreads: 1 });
  }, async (b) => {
    const zero = openFile("/dev/zero", O_RDONLY);
    try {
      const buf = new Uint8Array(8);
      const a = run(b, { op: "pread", fd: zero, buf });
      const c = run(b, { op: "pread", fd: zero, buf });
      assert.throws(() => b.submit({ op: "pread", fd: zero, buf }, () => {}), /queue is full/);
      assert.deepEqual(await Promise.all([a, c]), [8, 8]);
    } finally {
      closeFd(zero);
    }
  });
});

Deno.test("threads: one request starts one thread, not a second when the first is ready", async () => {
  let pool: ThreadPool | null = null;
  const zero = openFile("/dev/zero", O_RDONLY);
  try {
    await withBackend((loop) => (pool = new ThreadPool(loop, { maxThreads: 8 })), async (b) => {
      const p = pool!;
      // The request waits in the queue while its thread starts (tens of ms):
      // that thread takes it; nothing else needs a thread.
      assert.equal(await run(b, { op: "pread", fd: zero, buf: new Uint8Array(64) }), 64);
      await sleep(300); // a second Worker would have announced itself by now
      assert.equal(p.spawned, 1);
      assert.equal(p.threads, 1);
      // A backlog that lasts longer than a thread start grows the pool.
      const big = new Uint8Array(64 << 20);
      await Promise.all(
        Array.from({ length: 48 }, () => run(b, { op: "pread", fd: zero, buf: big })),
      );
      assert.ok(p.spawned >= 2, `spawned ${p.spawned}`);
    });
  } finally {
    closeFd(zero);
  }
});

Deno.test("threads: warm threads start at the first request and outlive the idle timeout", async () => {
  let pool: ThreadPool | null = null;
  const zero = openFile("/dev/zero", O_RDONLY);
  try {
    const factory = (
      loop: MainLoop,
    ) => (pool = new ThreadPool(loop, { warmThreads: 2, idleTimeoutMs: 20 }));
    await withBackend(factory, async (b) => {
      const p = pool!;
      assert.equal(p.threads, 0); // nothing before the first request
      assert.equal(await run(b, { op: "pread", fd: zero, buf: new Uint8Array(64) }), 64);
      await until(() => p.spawned === 2 && p.idleThreads === 2);
      await sleep(200); // ten idle timeouts
      assert.equal(p.threads, 2);
      assert.equal(p.spawned, 2);
    });
  } finally {
    closeFd(zero);
  }
});
