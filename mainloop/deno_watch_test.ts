// The main thread's loop sleeping on its own thread beside Deno's event-loop
// fd (MainLoopOptions.watchDeno): what Deno must still get, and the one-hop
// wake-up it is for.
import assert from "node:assert/strict";
import { MainLoop } from "./main_loop.ts";
import { denoReactorFd } from "../sys/deno_reactor.ts";

/** A loop that, idle, would hold Deno for `holdS` seconds if nothing woke it. */
async function withHoldingLoop(holdS: number, body: (loop: MainLoop) => Promise<void>) {
  assert.ok((await denoReactorFd()) >= 0, "Deno's event-loop fd was not found");
  const loop = new MainLoop({ yieldNs: holdS * 1e9 });
  const running = loop.run();
  try {
    // (No setTimeout in here: Deno's timers wait for the hold.)
    await body(loop);
  } finally {
    loop.stop();
    await running;
    loop.close();
  }
}

function worker(source: string): Worker {
  return new Worker(`data:text/javascript,${encodeURIComponent(source)}`, { type: "module" });
}

Deno.test("a Worker's message reaches the main thread while its loop sleeps there", async () => {
  const w = worker(`self.onmessage = () => setTimeout(() => self.postMessage("late"), 100);
    self.postMessage("up");`);
  let next = Promise.withResolvers<unknown>();
  w.onmessage = (e) => next.resolve(e.data);
  try {
    assert.equal(await next.promise, "up");
    next = Promise.withResolvers<unknown>();
    await withHoldingLoop(5, async (loop) => {
      const turns = loop.denoTurns;
      const t0 = performance.now();
      w.postMessage(null);
      assert.equal(await next.promise, "late");
      const dt = performance.now() - t0;
      // Without Deno's fd in the loop's set this waits out the 5 s hold.
      assert.ok(dt < 2500, `the message took ${dt.toFixed(0)} ms`);
      assert.ok(loop.denoTurns > turns, "Deno got no turn for it");
    });
  } finally {
    w.terminate();
  }
});

Deno.test("an idle main loop is woken from another thread without a turn through Deno", async () => {
  const w = worker(`import { SharedBh } from "${new URL("./bh.ts", import.meta.url).href}";
    self.onmessage = (e) => setTimeout(() => new SharedBh(e.data).schedule(), 200);
    self.postMessage("up");`);
  const up = new Promise((r) => (w.onmessage = r));
  await up;
  await withHoldingLoop(5, async (loop) => {
    const ran = Promise.withResolvers<number>();
    const bh = loop.bh(() => ran.resolve(performance.now()));
    try {
      w.postMessage(bh.handle());
      const turns = loop.denoTurns;
      const t0 = performance.now();
      const at = await ran.promise;
      assert.ok(at - t0 < 2500, `the BH ran after ${(at - t0).toFixed(0)} ms`);
      // The wake-up went through the loop's own ppoll: Deno was not needed
      // (one turn may come from a wake-up Deno posted itself before).
      assert.ok(loop.denoTurns <= turns + 1, `${loop.denoTurns - turns} turns through Deno`);
    } finally {
      w.terminate();
      bh.delete();
    }
  });
});

Deno.test("Deno's timers fire within the hold while the main loop sleeps there", async () => {
  assert.ok((await denoReactorFd()) >= 0);
  const loop = new MainLoop({ yieldNs: 20e6 });
  const running = loop.run();
  try {
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 1));
      const dt = performance.now() - t0;
      assert.ok(dt < 1000, `setTimeout(1) took ${dt.toFixed(0)} ms`);
    }
  } finally {
    loop.stop();
    await running;
    loop.close();
  }
});

Deno.test("after ownThreadNs with nothing to do the loop stops giving Deno turns", async () => {
  assert.ok((await denoReactorFd()) >= 0);
  const loop = new MainLoop({ ownThreadNs: 150e6 });
  const running = loop.run();
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  try {
    await sleep(400);
    const settled = loop.denoTurns;
    assert.ok(settled >= 3, `only ${settled} turns in the window`);
    await sleep(400);
    assert.equal(loop.denoTurns, settled, "turns while idle past the window");
    // Activity brings it back to its own thread.
    const ran = Promise.withResolvers<void>();
    loop.bh(() => ran.resolve()).schedule();
    await ran.promise;
    await sleep(100);
    assert.ok(loop.denoTurns > settled, "no turns after new activity");
  } finally {
    loop.stop();
    await running;
    loop.close();
  }
});
