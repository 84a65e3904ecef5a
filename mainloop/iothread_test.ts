import assert from "node:assert/strict";
import { closeFd, eventFd, eventFdWrite } from "../sys/fd.ts";
import { IOThread } from "./iothread.ts";
import { ioUringAvailable } from "../aio/io_uring.ts";

const fixture = new URL("./testdata/iothread_fixture.ts", import.meta.url);

Deno.test("an iothread runs functions on its own named thread", async () => {
  const io = await IOThread.start();
  try {
    assert.match(io.name, /^iothread-\d+$/);
    assert.equal(await io.call(fixture, "name"), io.name);
    assert.equal(await io.call(fixture, "add", 2, 3), 5);
    await assert.rejects(io.call(fixture, "fail"), /Deliberate failure/);
    await assert.rejects(io.call(fixture, "missing"), /has no function/);
  } finally {
    await io.stop();
  }
  await assert.rejects(io.call(fixture, "add", 1, 1), /stopped/);
});

Deno.test("an iothread owns fd handlers", async () => {
  const io = await IOThread.start({ name: "iothread-fd" });
  const efd = eventFd();
  try {
    await io.call(fixture, "watch", efd);
    for (let i = 0; i < 10; i++) eventFdWrite(efd);
    assert.equal(await io.call(fixture, "waitFor", "10"), "10");
    assert.equal(await io.call(fixture, "unwatch", efd), "10");
  } finally {
    await io.stop();
    closeFd(efd);
  }
});

Deno.test("an iothread owns an aio engine whose completions run on it", async () => {
  const io = await IOThread.start({ name: "iothread-aio" });
  const path = await Deno.makeTempFile();
  await Deno.writeTextFile(path, "disk data");
  try {
    assert.equal(await io.call(fixture, "readWithAio", path, "threads"), "iothread-aio:disk data");
    if (ioUringAvailable() === null) {
      assert.equal(
        await io.call(fixture, "readWithAio", path, "io_uring"),
        "iothread-aio:disk data",
      );
    }
  } finally {
    await io.stop();
    await Deno.remove(path);
  }
});
