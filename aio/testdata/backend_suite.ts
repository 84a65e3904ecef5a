// The backend-independent aio tests, run against the thread pool and io_uring.
import assert from "node:assert/strict";
import { MainLoop } from "../../mainloop/main_loop.ts";
import {
  closeFd,
  hostBuffer,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  mmap,
  munmap,
  O_RDONLY,
  O_RDWR,
  openFile,
  PROT_READ,
  PROT_WRITE,
} from "../../sys/fd.ts";
import {
  AIO_FALLOC_ZERO_FALLBACK,
  type AioBackend,
  type AioRequest,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
} from "../types.ts";
import { HostIovec } from "../iovec.ts";

export type Factory = (loop: MainLoop) => AioBackend;

export function run(b: AioBackend, req: AioRequest): Promise<number> {
  return new Promise((resolve) => b.submit(req, resolve));
}

export async function withBackend(
  factory: Factory,
  body: (b: AioBackend, loop: MainLoop) => Promise<void>,
): Promise<void> {
  const loop = new MainLoop();
  const running = loop.run();
  const b = factory(loop);
  try {
    await body(b, loop);
  } finally {
    await b.close();
    loop.stop();
    await running;
    loop.close();
  }
}

/** A temp file with deterministic content; returns path and content. */
export async function tempFile(
  size: number,
  seed = 1,
): Promise<{ path: string; data: Uint8Array }> {
  const path = await Deno.makeTempFile({ prefix: "denovmm-aio-" });
  const data = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
  }
  await Deno.writeFile(path, data);
  return { path, data };
}

function rand(n: number): number {
  return Math.floor(Math.random() * n);
}

export function backendSuite(name: string, factory: Factory): void {
  Deno.test(`${name}: 10,000 random reads and writes match the file`, async () => {
    const BLOCK = 4096, BLOCKS = 256;
    const { path, data: model } = await tempFile(BLOCK * BLOCKS);
    const fd = openFile(path, O_RDWR);
    try {
      await withBackend(factory, async (b) => {
        let ops = 0;
        while (ops < 10_000) {
          // One batch touches distinct blocks, so its requests may run in any order.
          const blocks = new Set<number>();
          while (blocks.size < 64) blocks.add(rand(BLOCKS));
          const batch: Promise<void>[] = [];
          const writes: [number, Uint8Array][] = [];
          for (const blk of blocks) {
            const start = rand(BLOCK - 512);
            const len = 1 + rand(BLOCK - start);
            const offset = blk * BLOCK + start;
            const kind = rand(4);
            const isWrite = rand(2) === 1;
            const buf = new Uint8Array(len);
            if (isWrite) {
              for (let i = 0; i < len; i++) buf[i] = rand(256);
              writes.push([offset, buf]);
            }
            const half = len >> 1;
            const req: AioRequest = kind < 2
              ? { op: isWrite ? "pwrite" : "pread", fd, offset, buf }
              : {
                op: isWrite ? "pwritev" : "preadv",
                fd,
                offset,
                iov: [
                  { addr: addrOf(buf), len: half },
                  { addr: addrOf(buf) + BigInt(half), len: len - half },
                ],
              };
            const keep = buf;
            batch.push(
              run(b, req).then((n) => {
                assert.equal(n, len, `${req.op} at ${offset} returned ${n}`);
                if (!isWrite) {
                  assert.deepEqual(keep, model.subarray(offset, offset + len), `read at ${offset}`);
                }
              }),
            );
            ops++;
          }
          await Promise.all(batch);
          for (const [off, buf] of writes) model.set(buf, off);
        }
        assert.equal(b.inFlight, 0);
      });
      assert.deepEqual(await Deno.readFile(path), model);
    } finally {
      closeFd(fd);
      await Deno.remove(path);
    }
  });

  Deno.test(`${name}: reads into and writes from host memory by address`, async () => {
    const { path, data } = await tempFile(8192, 7);
    const fd = openFile(path, O_RDWR);
    const addr = mmap(16384, { prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS });
    try {
      const ram = new Uint8Array(hostBuffer(addr, 16384));
      await withBackend(factory, async (b) => {
        assert.equal(
          await run(b, { op: "pread", fd, offset: 0, iov: [{ addr, len: 8192 }] }),
          8192,
        );
        assert.deepEqual(ram.subarray(0, 8192), data);
        const segs = [{ addr: addr + 100n, len: 10 }, { addr: addr + 9000n, len: 30 }];
        assert.equal(await run(b, { op: "preadv", fd, offset: 50, iov: segs }), 40);
        assert.deepEqual(ram.subarray(100, 110), data.subarray(50, 60));
        assert.deepEqual(ram.subarray(9000, 9030), data.subarray(60, 90));
        ram.fill(0xab, 12000, 12100);
        assert.equal(
          await run(b, {
            op: "pwritev",
            fd,
            offset: 8000,
            iov: [{ addr: addr + 12000n, len: 100 }],
          }),
          100,
        );
      });
      const file = await Deno.readFile(path);
      assert.equal(file.length, 8192);
      assert.ok(file.subarray(8000, 8100).every((x) => x === 0xab));
    } finally {
      munmap(addr, 16384);
      closeFd(fd);
      await Deno.remove(path);
    }
  });

  Deno.test(`${name}: preadv/pwritev from a reused HostIovec of many segments`, async () => {
    const { path, data } = await tempFile(1 << 20, 11);
    const fd = openFile(path, O_RDWR);
    const size = 2 << 20;
    const addr = mmap(size, { prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS });
    try {
      const ram = new Uint8Array(hostBuffer(addr, size));
      const base = Number(addr);
      // 254 scattered 4 KiB pages, in reverse order: one preadv fills them all.
      const pages = 254;
      const v = new HostIovec(4); // grows while filled
      await withBackend(factory, async (b) => {
        v.reset();
        for (let i = 0; i < pages; i++) v.push(base + (pages - 1 - i) * 2 * 4096, 4096);
        assert.equal(v.count, pages);
        assert.equal(await run(b, { op: "preadv", fd, offset: 4096, iovec: v }), pages * 4096);
        for (const i of [0, 1, 100, pages - 1]) {
          const page = ram.subarray((pages - 1 - i) * 8192, (pages - 1 - i) * 8192 + 4096);
          assert.deepEqual(page, data.subarray(4096 + i * 4096, 8192 + i * 4096), `page ${i}`);
        }
        // Reused for a write of two segments: the file gets them back to back.
        ram.fill(0x5a, 0, 512);
        ram.fill(0xa5, 8192, 8192 + 512);
        v.reset();
        v.push(base, 512);
        v.push(base + 8192, 512);
        assert.equal(await run(b, { op: "pwritev", fd, offset: 0, iovec: v }), 1024);
        v.reset();
        assert.throws(() => b.submit({ op: "preadv", fd, iovec: v }, () => {}), RangeError);
      });
      const file = await Deno.readFile(path);
      assert.ok(file.subarray(0, 512).every((x) => x === 0x5a));
      assert.ok(file.subarray(512, 1024).every((x) => x === 0xa5));
      assert.deepEqual(file.subarray(1024, 4096), data.subarray(1024, 4096));
    } finally {
      munmap(addr, size);
      closeFd(fd);
      await Deno.remove(path);
    }
  });

  Deno.test(`${name}: short reads at EOF`, async () => {
    const { path, data } = await tempFile(1000);
    const fd = openFile(path, O_RDONLY);
    try {
      await withBackend(factory, async (b) => {
        const buf = new Uint8Array(4096);
        assert.equal(await run(b, { op: "pread", fd, offset: 0, buf }), 1000);
        assert.deepEqual(buf.subarray(0, 1000), data);
        assert.equal(await run(b, { op: "pread", fd, offset: 900, buf }), 100);
        assert.equal(await run(b, { op: "pread", fd, offset: 1000, buf }), 0);
        assert.equal(await run(b, { op: "pread", fd, offset: 5000, buf }), 0);
        assert.equal(await run(b, { op: "preadv", fd, offset: 990, buf }), 10);
      });
    } finally {
      closeFd(fd);
      await Deno.remove(path);
    }
  });

  Deno.test(`${name}: errors come back as negative errno`, async () => {
    const { path } = await tempFile(100);
    const ro = openFile(path, O_RDONLY);
    const dir = openFile("/tmp", O_RDONLY);
    try {
      await withBackend(factory, async (b) => {
        const buf = new Uint8Array(10);
        assert.equal(await run(b, { op: "pread", fd: 1 << 20, offset: 0, buf }), -9); // EBADF
        assert.equal(await run(b, { op: "pwrite", fd: ro, offset: 0, buf }), -9); // EBADF
        assert.equal(await run(b, { op: "pread", fd: dir, offset: 0, buf }), -21); // EISDIR
        assert.equal(await run(b, { op: "fsync", fd: 1 << 20 }), -9);
        assert.equal(
          await run(b, { op: "preadv", fd: ro, offset: 0, iov: [{ addr: 8n, len: 10 }] }),
          -14, // EFAULT
        );
        assert.throws(
          () => b.submit({ op: "pread", fd: ro, offset: -1, buf }, () => {}),
          RangeError,
        );
        // deno-lint-ignore no-explicit-any
        assert.throws(() => b.submit({ op: "bogus" as any, fd: ro }, () => {}), RangeError);
        assert.throws(() => b.submit({ op: "preadv", fd: ro, iov: [] }, () => {}), RangeError);
        assert.throws(() => b.submit({ op: "pread", fd: ro }, () => {}), RangeError);
        assert.equal(b.inFlight, 0);
      });
    } finally {
      closeFd(ro);
      closeFd(dir);
      await Deno.remove(path);
    }
  });

  Deno.test(`${name}: fsync after writes, and cancel of a finished request fails`, async () => {
    const { path } = await tempFile(0);
    const fd = openFile(path, O_RDWR);
    try {
      await withBackend(factory, async (b) => {
        const buf = new TextEncoder().encode("durable");
        const writes = [0, 7, 14].map((offset) => run(b, { op: "pwrite", fd, offset, buf }));
        assert.deepEqual(await Promise.all(writes), [7, 7, 7]);
        // Submitted after the writes completed, so it covers them.
        assert.equal(await run(b, { op: "fsync", fd }), 0);
        assert.equal(await run(b, { op: "fdatasync", fd }), 0);
        let h = -1;
        const r = await new Promise<number>((res) => (h = b.submit({ op: "fsync", fd }, res)));
        assert.equal(r, 0);
        assert.equal(b.cancel(h), false);
        assert.equal(b.cancel(123456789), false);
      });
      assert.equal(await Deno.readTextFile(path), "durabledurabledurable");
    } finally {
      closeFd(fd);
      await Deno.remove(path);
    }
  });

  Deno.test(`${name}: fallocate zeroes ranges, falling back to writing zeros`, async () => {
    // tmpfs punches holes but has no ZERO_RANGE: the fallback must write zeros there.
    const dirs = [undefined, "/dev/shm"].filter((d) => !d || isDir(d));
    const EOPNOTSUPP = 95;
    for (const dir of dirs) {
      const size = 4 << 20;
      const path = await Deno.makeTempFile({ dir, prefix: "denovmm-aio-falloc-" });
      await Deno.writeFile(path, new Uint8Array(size).fill(0xa5));
      const fd = openFile(path, O_RDWR);
      const model = new Uint8Array(size).fill(0xa5);
      try {
        await withBackend(factory, async (b) => {
          const cases: [number, number, number][] = [
            [FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192],
            [
              FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE | AIO_FALLOC_ZERO_FALLBACK,
              512,
              2560 << 10,
            ],
            [FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE | AIO_FALLOC_ZERO_FALLBACK, 3 << 20, 4608],
          ];
          for (const [mode, offset, len] of cases) {
            const r = await run(b, { op: "fallocate", fd, offset, len, mode });
            assert.equal(r, len, `mode ${mode.toString(16)} in ${dir ?? "tmp"}`);
            model.fill(0, offset, offset + len);
          }
          // Without the fallback a mode the file system lacks fails with its errno.
          const plain = await run(b, {
            op: "fallocate",
            fd,
            offset: 0,
            len: 512,
            mode: FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
          });
          if (plain < 0) assert.equal(plain, -EOPNOTSUPP);
          else model.fill(0, 0, 512);
          assert.throws(
            () => b.submit({ op: "fallocate", fd, len: 1, mode: -1 }, () => {}),
            RangeError,
          );
        });
        assert.deepEqual(await Deno.readFile(path), model);
      } finally {
        closeFd(fd);
        await Deno.remove(path);
      }
    }
  });
}

function addrOf(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}
