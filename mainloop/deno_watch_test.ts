// The main thread's loop sleeping on its own thread beside Deno's event-loop
// fd (MainLoopOptions.watchDeno): what Deno must still get, and the one-hop
// wake-up it is for.
import assert from "node:assert/strict";
import { MainLoop } from "./main_loop.ts";
import { denoReactorFd } from "../sys/deno_reactor.ts";
import { awaitDeno } from "./deno_work.ts";
import { VmControl, VmState } from "../vcpu/vm_control.ts";

/** A loop that, idle, would hold Deno for `holdS` seconds if nothing woke it. */
async function withHoldingLoop(holdS: number, body: (loop: MainLoop) => Promise<void>) {
  assert.ok((await denoReactorFd()) >= 0, "Deno's event-loop fd was not found");
  const loop = new MainLoop({ yieldNs: holdS * 1e9, untrackedYieldNs: holdS * 1e9 });
  const running = loop.run();
  try {
    // (Deno's timers made here are tracked: the loop turns when they are due.)
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
  // Turns every 20 ms for what it cannot track, while on its own thread.
  const loop = new MainLoop({ ownThreadNs: 150e6, untrackedYieldNs: 20e6 });
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

Deno.test("a busy loop gives Deno no periodic turns while none of its timers is due", async () => {
  assert.ok((await denoReactorFd()) >= 0);
  // The loop's own timer keeps it active (its callbacks are not Deno's).
  const loop = new MainLoop({ untrackedYieldNs: 5e9 });
  const running = loop.run();
  try {
    const done = Promise.withResolvers<number>();
    let n = 0;
    let turns = 0;
    const t = loop.timer("realtime", () => {
      if (++n === 25) turns = loop.denoTurns; // past the start's own turns
      if (n === 150) done.resolve(loop.denoTurns - turns);
      else t.mod(loop.now("realtime") + 2e6);
    });
    t.mod(loop.now("realtime") + 2e6);
    const extra = await done.promise;
    // About 250 ms of activity: every 10 ms would be ~25 turns.
    assert.ok(extra <= 3, `${extra} turns through Deno while busy`);
  } finally {
    loop.stop();
    await running;
    loop.close();
  }
});

Deno.test("a Deno timer made while the loop holds its thread fires when due, once or every period", async () => {
  await withHoldingLoop(5, async (loop) => {
    const turns = loop.denoTurns;
    let t0 = performance.now();
    await new Promise((r) => setTimeout(r, 30));
    let dt = performance.now() - t0;
    // Untracked it waits out the 5 s hold.
    assert.ok(dt >= 29 && dt < 1000, `setTimeout(30) took ${dt.toFixed(0)} ms`);
    t0 = performance.now();
    let n = 0;
    await new Promise<void>((r) => {
      const id = setInterval(() => {
        if (++n < 3) return;
        clearInterval(id);
        r();
      }, 20);
    });
    dt = performance.now() - t0;
    assert.ok(dt >= 59 && dt < 2000, `3 periods of 20 ms took ${dt.toFixed(0)} ms`);
    assert.ok(loop.denoTurns - turns < 40, `${loop.denoTurns - turns} turns`);
  });
});

Deno.test("an announced Atomics.waitAsync gets its turn at yieldNs, not the untracked hold", async () => {
  const w = worker(`self.onmessage = (e) => setTimeout(() => {
      Atomics.store(e.data, 0, 1);
      Atomics.notify(e.data, 0);
    }, 50);
    self.postMessage("up");`);
  await new Promise((r) => (w.onmessage = r));
  try {
    assert.ok((await denoReactorFd()) >= 0);
    const loop = new MainLoop({ yieldNs: 10e6, untrackedYieldNs: 5e9 });
    const running = loop.run();
    try {
      const words = new Int32Array(new SharedArrayBuffer(4));
      const t0 = performance.now();
      const r = Atomics.waitAsync(words, 0, 0, 10_000);
      assert.ok(r.async);
      w.postMessage(words);
      assert.equal(await awaitDeno(r.value), "ok");
      const dt = performance.now() - t0;
      assert.ok(dt < 2500, `the notify arrived after ${dt.toFixed(0)} ms`);
    } finally {
      loop.stop();
      await running;
      loop.close();
    }
  } finally {
    w.terminate();
  }
});

Deno.test("a VM stop ends waitStopped at once, from this thread or with a vCPU thread's message", async () => {
  const w = worker(
    `import { VmControl } from "${new URL("../vcpu/vm_control.ts", import.meta.url).href}";
    self.onmessage = (e) => setTimeout(() => {
      new VmControl(e.data).requestStop(2, 3);
      self.postMessage("exited");
    }, 50);
    self.postMessage("up");`,
  );
  await new Promise((r) => (w.onmessage = r));
  try {
    await withHoldingLoop(5, async (loop) => {
      const here = new VmControl(new SharedArrayBuffer(VmControl.bytes(1)));
      let t0 = performance.now();
      const stopped = here.waitStopped();
      loop.bh(() => here.requestStop(VmState.PowerOff, 0)).schedule();
      assert.equal(await stopped, VmState.PowerOff);
      let dt = performance.now() - t0;
      assert.ok(dt < 2500, `a stop on this thread took ${dt.toFixed(0)} ms`);
      const there = new VmControl(new SharedArrayBuffer(VmControl.bytes(1)));
      t0 = performance.now();
      const ended = there.waitStopped();
      w.onmessage = () => {};
      w.postMessage(there.buffer);
      assert.equal(await ended, 2);
      dt = performance.now() - t0;
      assert.ok(dt < 2500, `a stop by a Worker took ${dt.toFixed(0)} ms`);
    });
  } finally {
    w.terminate();
  }
});
