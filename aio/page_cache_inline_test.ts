import assert from "node:assert/strict";
import {
  F_GETFL,
  INLINE_BUDGET_BYTES,
  INLINE_MAX_BYTES,
  type InlineEngine,
  inlinePlanOf,
  PageCacheInline,
  RAMFS_MAGIC,
  RWF_NOWAIT,
  STATFS_BYTES,
  TMPFS_MAGIC,
} from "./page_cache_inline.ts";
import { HostIovec } from "./iovec.ts";
import type { AioCallback, AioRequest } from "./types.ts";
import { libc } from "../sys/libc.ts";
import { O_CLOEXEC, O_DIRECT, O_RDWR } from "../sys/fd.ts";

const POSIX_FADV_DONTNEED = 4;

/** An engine that records what reaches it and completes it with `result`. */
class RecordingEngine implements InlineEngine {
  ops: string[] = [];
  submit(req: AioRequest, cb: AioCallback): number {
    this.ops.push(req.op);
    cb(-11);
    return 7;
  }
}

function address(b: Uint8Array): number {
  return Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
}

/** An iovec of `pages` 4 KiB pieces of `buf`, every other page (guest-like scatter). */
function scattered(buf: Uint8Array, pages: number): HostIovec {
  const v = new HostIovec();
  for (let i = 0; i < pages; i++) v.push(address(buf) + 8192 * i, 4096);
  return v;
}

function pattern(bytes: number, seed: number): Uint8Array {
  const b = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 7 + seed + (i >> 12)) & 0xff;
  return b;
}

function openPath(path: string, flags = O_RDWR): number {
  const fd = libc.open(new TextEncoder().encode(path + "\0"), flags | O_CLOEXEC, 0);
  assert.ok(fd >= 0, `open ${path}`);
  return fd;
}

/** A file of `bytes` in `dir`, with its pattern; removed by the caller. */
function imageIn(dir: string, bytes: number): { path: string; data: Uint8Array } {
  const path = Deno.makeTempFileSync({ dir, prefix: "denovmm-inline-", suffix: ".img" });
  const data = pattern(bytes, 3);
  Deno.writeFileSync(path, data);
  return { path, data };
}

/** A directory on a disk file system (not tmpfs), for the RWF_NOWAIT path. */
function diskDir(): string {
  for (const d of ["/var/tmp", Deno.cwd()]) {
    const st = new Uint32Array(30);
    const fd = openPath(d, 0o200000 /* O_DIRECTORY */);
    const ok = libc.fstatfs(fd, new Uint8Array(st.buffer)) === 0 && st[0] !== TMPFS_MAGIC;
    libc.close(fd);
    if (ok) return d;
  }
  throw new Error("No directory on a disk file system");
}

Deno.test("a memory file system: reads, writes and flushes run inline, bytes land", () => {
  const { path, data } = imageIn("/dev/shm", 1 << 20);
  const fd = openPath(path);
  try {
    const engine = new RecordingEngine();
    const aio = new PageCacheInline(engine, fd);
    assert.deepEqual(aio.plan, { reads: "memory", writes: "memory" });
    const buf = new Uint8Array(2 << 20);
    const v = scattered(buf, 64);
    let got = 0;
    assert.equal(aio.submit({ op: "preadv", fd, offset: 65536, iovec: v }, (r) => (got = r)), 0);
    assert.equal(got, 64 * 4096, "completed before submit returned");
    for (let i = 0; i < 64; i++) {
      assert.deepEqual(
        buf.subarray(8192 * i, 8192 * i + 4096),
        data.subarray(65536 + 4096 * i, 65536 + 4096 * (i + 1)),
      );
    }
    buf.fill(0x5a);
    aio.submit({ op: "pwritev", fd, offset: 0, iovec: v }, (r) => (got = r));
    assert.equal(got, 64 * 4096);
    aio.submit({ op: "fdatasync", fd }, (r) => (got = r));
    assert.equal(got, 0);
    assert.deepEqual(engine.ops, []);
    assert.equal(aio.inline, 3);
    assert.ok(Deno.readFileSync(path).subarray(0, 64 * 4096).every((b) => b === 0x5a));
  } finally {
    libc.close(fd);
    Deno.removeSync(path);
  }
});

Deno.test("a disk file system: cached reads inline, evicted ones and writes go to the engine", () => {
  const { path, data } = imageIn(diskDir(), 1 << 20);
  const fd = openPath(path);
  try {
    const engine = new RecordingEngine();
    const aio = new PageCacheInline(engine, fd);
    assert.deepEqual(aio.plan, { reads: "nowait", writes: "nowait" });
    const buf = new Uint8Array(1 << 20);
    const v = scattered(buf, 16);
    let got = 0;
    aio.submit({ op: "preadv", fd, offset: 0, iovec: v }, (r) => (got = r));
    if (aio.plan.reads === "off") {
      // This file system refuses RWF_NOWAIT: from now on, the engine.
      assert.deepEqual(engine.ops, ["preadv"]);
      assert.equal(got, -11);
    } else {
      assert.deepEqual(engine.ops, [], "the file was just written: in the page cache");
      assert.equal(got, 16 * 4096);
      assert.deepEqual(buf.subarray(8192, 8192 + 4096), data.subarray(4096, 8192));
      // Clean pages dropped from the cache: RWF_NOWAIT does not wait for the
      // disk, the engine reads them. A RWF_NOWAIT miss still starts the
      // kernel's readahead, and a fast disk can bring the pages in before the
      // read looks again (1 in 4 here): then it completes inline with the
      // file's bytes, and the test evicts and reads again.
      let raced = 0;
      for (; engine.ops.length === 0 && raced < 20; raced++) {
        assert.equal(libc.fdatasync(fd), 0);
        assert.equal(libc.posix_fadvise(fd, 0n, 0n, POSIX_FADV_DONTNEED), 0);
        buf.fill(0);
        got = 0;
        aio.submit({ op: "preadv", fd, offset: 0, iovec: v }, (r) => (got = r));
        if (engine.ops.length === 0) {
          assert.equal(got, 16 * 4096, "inline only with the whole read");
          assert.deepEqual(buf.subarray(8192 * 15, 8192 * 15 + 4096), data.subarray(61440, 65536));
        }
      }
      assert.deepEqual(engine.ops, ["preadv"], `no miss in ${raced} evictions`);
      assert.equal(got, -11);
      assert.equal(aio.missed, 1);
      assert.equal(aio.inline, raced);
      assert.equal(aio.plan.reads, "nowait");
    }
    // Flushes of a disk file always go to the engine; a write goes there
    // unless the kernel takes RWF_NOWAIT for buffered writes.
    aio.submit({ op: "fdatasync", fd }, () => {});
    assert.equal(engine.ops.at(-1), "fdatasync");
    const before = engine.ops.length;
    aio.submit({ op: "pwritev", fd, offset: 0, iovec: v }, (r) => (got = r));
    if (aio.plan.writes === "nowait" && got === 16 * 4096) {
      assert.equal(engine.ops.length, before);
    } else {
      assert.equal(engine.ops.at(-1), "pwritev");
    }
  } finally {
    libc.close(fd);
    Deno.removeSync(path);
  }
});

Deno.test("O_DIRECT, oversized requests and requests without an iovec go to the engine", () => {
  const { path } = imageIn(diskDir(), 1 << 20);
  const direct = libc.open(new TextEncoder().encode(path + "\0"), O_RDWR | O_DIRECT | O_CLOEXEC, 0);
  const shm = imageIn("/dev/shm", 4096);
  const fd = openPath(shm.path);
  try {
    assert.deepEqual(inlinePlanOf(-1), { reads: "off", writes: "off" });
    if (direct >= 0) assert.deepEqual(inlinePlanOf(direct), { reads: "off", writes: "off" });
    const engine = new RecordingEngine();
    const aio = new PageCacheInline(engine, fd, { plan: { reads: "memory", writes: "memory" } });
    const big = new HostIovec();
    const buf = new Uint8Array(4096);
    // Never run: the addresses only have to be counted.
    for (let n = 0; n <= INLINE_MAX_BYTES; n += 1 << 20) big.push(address(buf), 1 << 20);
    assert.ok(big.bytes > INLINE_MAX_BYTES);
    assert.equal(aio.submit({ op: "preadv", fd, offset: 0, iovec: big }, () => {}), 7);
    aio.submit({ op: "pread", fd, offset: 0, buf }, () => {});
    aio.submit({ op: "fallocate", fd, offset: 0, len: 4096, mode: 0 }, () => {});
    assert.deepEqual(engine.ops, ["preadv", "pread", "fallocate"]);
    assert.equal(aio.inline, 0);
  } finally {
    if (direct >= 0) libc.close(direct);
    libc.close(fd);
    Deno.removeSync(path);
    Deno.removeSync(shm.path);
  }
});

Deno.test("the constants and struct statfs match the C headers", async () => {
  const src = [
    "#define _GNU_SOURCE",
    "#include <stdio.h>",
    "#include <stddef.h>",
    "#include <fcntl.h>",
    "#include <sys/uio.h>",
    "#include <sys/vfs.h>",
    "#include <linux/magic.h>",
    "int main(void) {",
    'printf("%lu %lu %lu %lu %lu %lu %lu\\n", (unsigned long)RWF_NOWAIT,',
    "  (unsigned long)TMPFS_MAGIC, (unsigned long)RAMFS_MAGIC, (unsigned long)F_GETFL,",
    "  (unsigned long)O_DIRECT, offsetof(struct statfs, f_type), sizeof(struct statfs));",
    "return 0; }",
  ].join("\n");
  const dir = await Deno.makeTempDir({ prefix: "inline-abi-probe-" });
  try {
    await Deno.writeTextFile(`${dir}/probe.c`, src);
    const cc = await new Deno.Command("cc", { args: ["-o", `${dir}/probe`, `${dir}/probe.c`] })
      .output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const out = await new Deno.Command(`${dir}/probe`).output();
    const c = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
    assert.deepEqual(c, [RWF_NOWAIT, TMPFS_MAGIC, RAMFS_MAGIC, F_GETFL, O_DIRECT, 0, STATFS_BYTES]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inline copies stop at the budget of a loop turn and resume in the next", () => {
  const { path } = imageIn("/dev/shm", 1 << 20);
  const fd = openPath(path);
  let refill: (() => void) | null = null;
  let scheduled = 0, deleted = 0;
  const loop = {
    bh(cb: () => void) {
      refill = cb;
      return {
        schedule: () => void scheduled++,
        cancel: () => {},
        delete: () => void deleted++,
      };
    },
  };
  try {
    const engine = new RecordingEngine();
    const aio = new PageCacheInline(engine, fd, { loop });
    const buf = new Uint8Array(1 << 20);
    const v = new HostIovec();
    v.push(address(buf), 1 << 20);
    const perTurn = INLINE_BUDGET_BYTES / (1 << 20);
    for (let i = 0; i < perTurn; i++) {
      aio.submit({ op: "preadv", fd, offset: 0, iovec: v }, () => {});
    }
    assert.equal(aio.inline, perTurn);
    assert.equal(scheduled, 1, "one refill per turn that copied inline");
    aio.submit({ op: "preadv", fd, offset: 0, iovec: v }, () => {});
    assert.deepEqual(engine.ops, ["preadv"], "past the budget: the engine");
    refill!();
    aio.submit({ op: "preadv", fd, offset: 0, iovec: v }, () => {});
    assert.equal(aio.inline, perTurn + 1);
    assert.equal(scheduled, 2);
    aio.close();
    assert.equal(deleted, 1);
  } finally {
    libc.close(fd);
    Deno.removeSync(path);
  }
});
