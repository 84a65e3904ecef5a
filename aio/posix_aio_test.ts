import assert from "node:assert/strict";
import { EBADF, ECANCELED, EINPROGRESS, EINVAL, ErrnoError } from "../sys/errno.ts";
import { closeFd, O_RDONLY, O_RDWR, openFile } from "../sys/fd.ts";
import { MainLoop } from "../mainloop/main_loop.ts";
import {
  AIO_ALLDONE,
  AIO_CANCELED,
  AIO_NOTCANCELED,
  aioCancel,
  Aiocb,
  aioError,
  aioFsync,
  aioRead,
  aioReturn,
  aioSetup,
  aioShutdown,
  aioSuspend,
  aioWrite,
  LIO_NOP,
  LIO_NOWAIT,
  LIO_READ,
  LIO_WAIT,
  LIO_WRITE,
  lioListio,
  O_DSYNC,
  O_SYNC,
} from "./posix_aio.ts";
import { ioUringAvailable } from "./io_uring.ts";
import { tempFile } from "./testdata/backend_suite.ts";

async function wait(cb: Aiocb): Promise<void> {
  while (aioError(cb) === EINPROGRESS) await aioSuspend([cb]);
}

const backends: ("threads" | "io_uring")[] = ioUringAvailable()
  ? ["threads"]
  : ["threads", "io_uring"];

for (const backend of backends) {
  Deno.test(`posix aio (${backend}): read, write, fsync, return once`, async () => {
    const { path, data } = await tempFile(3000);
    const fd = openFile(path, O_RDWR);
    const loop = new MainLoop();
    const running = loop.run();
    try {
      await aioSetup({ loop, backend });
      const cb = new Aiocb({ fd, buf: new Uint8Array(1024), nbytes: 1024, offset: 2500 });
      aioRead(cb);
      assert.throws(() => aioRead(cb), ErrnoError); // still in progress
      await wait(cb);
      assert.equal(aioError(cb), 0);
      assert.equal(aioReturn(cb), 500); // short read at EOF
      assert.deepEqual(cb.buf!.subarray(0, 500), data.subarray(2500));
      assert.throws(() => aioReturn(cb), (e: ErrnoError) => e.errno === EINVAL);

      const w = new Aiocb({ fd, buf: new TextEncoder().encode("hello"), offset: 10 });
      aioWrite(w);
      await wait(w);
      assert.equal(aioReturn(w), 5);
      const s = new Aiocb({ fd });
      aioFsync(O_SYNC, s);
      await wait(s);
      assert.equal(aioReturn(s), 0);
      aioFsync(O_DSYNC, s);
      await wait(s);
      assert.equal(aioReturn(s), 0);
      assert.throws(() => aioFsync(12345, s), ErrnoError);

      const bad = new Aiocb({ fd: 1 << 20, buf: new Uint8Array(4) });
      aioRead(bad);
      await wait(bad);
      assert.equal(aioError(bad), EBADF);
      assert.equal(aioReturn(bad), -1);
      assert.throws(
        () => aioRead(new Aiocb({ fd, buf: new Uint8Array(4), nbytes: 8 })),
        ErrnoError,
      );
      assert.throws(() => aioError(new Aiocb()), ErrnoError);
      assert.equal(aioCancel(fd, cb), AIO_ALLDONE);
    } finally {
      await aioShutdown();
      loop.stop();
      await running;
      loop.close();
      closeFd(fd);
      await Deno.remove(path);
    }
  });

  Deno.test(`posix aio (${backend}): lio_listio wait and nowait, aio_suspend timeout`, async () => {
    const { path, data } = await tempFile(8192);
    const fd = openFile(path, O_RDWR);
    try {
      await aioSetup({ backend });
      const list = [0, 1, 2, 3].map((i) =>
        new Aiocb({ fd, buf: new Uint8Array(1024), offset: i * 1024, lioOpcode: LIO_READ })
      );
      await lioListio(LIO_WAIT, [...list, null, new Aiocb({ lioOpcode: LIO_NOP })]);
      for (const [i, cb] of list.entries()) {
        assert.equal(aioReturn(cb), 1024);
        assert.deepEqual(cb.buf, data.subarray(i * 1024, (i + 1) * 1024));
      }
      const w = new Aiocb({ fd, buf: new Uint8Array(16).fill(7), offset: 0, lioOpcode: LIO_WRITE });
      await lioListio(LIO_NOWAIT, [w]);
      await aioSuspend([null, w]);
      assert.equal(aioReturn(w), 16);
      const failing = new Aiocb({ fd: 1 << 20, buf: new Uint8Array(1), lioOpcode: LIO_READ });
      await assert.rejects(lioListio(LIO_WAIT, [failing]), ErrnoError);
      await aioSuspend([]);
      await assert.rejects(lioListio(99, []), ErrnoError);
    } finally {
      await aioShutdown();
      closeFd(fd);
      await Deno.remove(path);
    }
  });
}

Deno.test("posix aio: aio_cancel of queued and running requests, and suspend timeout", async () => {
  const zero = openFile("/dev/zero", O_RDONLY);
  try {
    await aioSetup({ backend: "threads", pool: { maxThreads: 1 } });
    const big = new Aiocb({ fd: zero, buf: new Uint8Array(256 << 20) });
    const small = new Aiocb({ fd: zero, buf: new Uint8Array(8) });
    aioRead(big);
    aioRead(small);
    // The single thread is still starting or busy with `big`, so `small` is queued.
    assert.equal(aioCancel(zero, small), AIO_CANCELED);
    const r = aioCancel(zero);
    assert.ok(r === AIO_NOTCANCELED || r === AIO_CANCELED, `aio_cancel gave ${r}`);
    await aioSuspend([small]);
    assert.equal(aioError(small), ECANCELED);
    assert.equal(aioReturn(small), -1);
    await wait(big);
    assert.ok(aioError(big) === 0 || aioError(big) === ECANCELED);
    assert.throws(() => aioCancel(zero + 1, big), ErrnoError);
    const slow = new Aiocb({ fd: zero, buf: new Uint8Array(256 << 20) });
    aioRead(slow);
    await assert.rejects(aioSuspend([slow], 0), (e: ErrnoError) => e.code === "EAGAIN");
    await wait(slow);
  } finally {
    await aioShutdown();
    closeFd(zero);
  }
});

Deno.test("posix aio: a private loop starts on demand and stops when idle", async () => {
  const { path } = await tempFile(100);
  const fd = openFile(path, O_RDONLY);
  try {
    const cb = new Aiocb({ fd, buf: new Uint8Array(100) });
    aioRead(cb);
    await wait(cb);
    assert.equal(aioReturn(cb), 100);
    // The idle shutdown (50 ms) joins the pool's threads; nothing leaks.
    await new Promise((r) => setTimeout(r, 150));
  } finally {
    await aioShutdown();
    closeFd(fd);
    await Deno.remove(path);
  }
});
