import assert from "node:assert/strict";
import { MainLoop } from "../mainloop/main_loop.ts";
import { IoUring, ioUringAvailable } from "./io_uring.ts";
import { backendSuite } from "./testdata/backend_suite.ts";
import { createAioBackend } from "./backend.ts";

const reason = ioUringAvailable();
if (reason) console.warn(`io_uring tests skipped: ${reason}`);

if (!reason) backendSuite("io_uring", (loop) => IoUring.create(loop, { entries: 128 }));

Deno.test({
  name: "io_uring: bad ring sizes are rejected",
  fn() {
    const loop = new MainLoop();
    try {
      assert.throws(() => IoUring.create(loop, { entries: 3 }), RangeError);
      assert.throws(() => IoUring.create(loop, { entries: 1 << 20 }), RangeError);
    } finally {
      loop.close();
    }
  },
});

Deno.test("aio engines are chosen by name", async () => {
  const loop = new MainLoop();
  const running = loop.run();
  try {
    const t = createAioBackend(loop, "threads");
    assert.equal(t.kind, "threads");
    await t.close();
    if (!reason) {
      const u = createAioBackend(loop, "io_uring");
      assert.equal(u.kind, "io_uring");
      await u.close();
    }
    // deno-lint-ignore no-explicit-any
    assert.throws(() => createAioBackend(loop, "native" as any), /use threads or io_uring/);
  } finally {
    loop.stop();
    await running;
    loop.close();
  }
});
