// The bookkeeping behind the main loop's turns (deno_work.ts): the due time
// of the earliest of Deno's timers, and waits announced by awaitDeno.
import assert from "node:assert/strict";
import { awaitDeno, denoWaits, nextTimerDue, watchDenoTimers } from "./deno_work.ts";

watchDenoTimers();

function near(actual: number, expected: number, what: string) {
  assert.ok(Math.abs(actual - expected) < 50, `${what}: ${actual} vs ${expected}`);
}

Deno.test("a timer's due time is known until it fires or is cleared", async () => {
  assert.equal(nextTimerDue(), Infinity);
  const t0 = performance.now();
  const late = setTimeout(() => {}, 5000);
  near(nextTimerDue(), t0 + 5000, "one timer");
  const fired = Promise.withResolvers<unknown[]>();
  setTimeout((...args: unknown[]) => fired.resolve(args), 30, "a", 2);
  near(nextTimerDue(), t0 + 30, "the earlier of two");
  assert.deepEqual(await fired.promise, ["a", 2], "arguments passed through");
  near(nextTimerDue(), t0 + 5000, "after the earlier fired");
  clearTimeout(late);
  assert.equal(nextTimerDue(), Infinity);
});

Deno.test("an interval's due time moves on at each firing; clearInterval forgets it", async () => {
  let n = 0;
  const done = Promise.withResolvers<void>();
  const id = setInterval(() => {
    if (++n === 3) done.resolve();
  }, 20);
  await done.promise;
  const t = performance.now();
  assert.ok(nextTimerDue() > t - 5 && nextTimerDue() <= t + 25, `next at ${nextTimerDue() - t}`);
  clearInterval(id);
  assert.equal(nextTimerDue(), Infinity);
});

Deno.test("clearTimeout clears an interval and clearInterval a timeout, as in Deno", async () => {
  let ran = 0;
  const a = setInterval(() => ran++, 10);
  const b = setTimeout(() => ran++, 10);
  clearTimeout(a);
  clearInterval(b);
  assert.equal(nextTimerDue(), Infinity);
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(ran, 0);
});

Deno.test("ids stay Deno's: Deno.unrefTimer takes them", () => {
  const id = setTimeout(() => {}, 100_000);
  Deno.unrefTimer(id);
  clearTimeout(id);
  assert.equal(nextTimerDue(), Infinity);
});

Deno.test("a delay beyond 2^31-1 ms is passed through untracked", () => {
  const id = setTimeout(() => {}, 2 ** 40);
  assert.equal(nextTimerDue(), Infinity);
  clearTimeout(id);
});

Deno.test("a throwing callback still leaves the timer forgotten", async () => {
  const seen = Promise.withResolvers<void>();
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    seen.resolve();
  };
  globalThis.addEventListener("error", onError);
  try {
    setTimeout(() => {
      throw new Error("boom");
    }, 5);
    await seen.promise;
    assert.equal(nextTimerDue(), Infinity);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});

Deno.test("awaitDeno counts a wait until it settles, either way", async () => {
  assert.equal(denoWaits(), 0);
  const ok = Promise.withResolvers<number>();
  const bad = Promise.withResolvers<number>();
  const a = awaitDeno(ok.promise);
  const b = awaitDeno(bad.promise);
  assert.equal(denoWaits(), 2);
  ok.resolve(7);
  assert.equal(await a, 7);
  assert.equal(denoWaits(), 1);
  bad.reject(new Error("no"));
  await assert.rejects(b, /no/);
  assert.equal(denoWaits(), 0);
});

Deno.test("a timer cleared by its number is forgotten too", () => {
  const id = setTimeout(() => {}, 100_000);
  assert.notEqual(nextTimerDue(), Infinity);
  clearTimeout(Number(id));
  assert.equal(nextTimerDue(), Infinity);
});

Deno.test("a tracked timer cleared behind the wrappers' back stops counting once long overdue", async () => {
  const t0 = performance.now();
  const id = setTimeout(() => {}, 10);
  // A clear the wrappers do not see: Node's API on Deno's Timeout object.
  (id as unknown as { close(): void }).close();
  near(nextTimerDue(), t0 + 10, "still believed due");
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(nextTimerDue(), Infinity);
});

Deno.test("Deno's timers are taken on their first read, not when the wrappers go in", async () => {
  // A fresh isolate: this one's timers were read long ago.
  const src = `import { denoTimersRead, nextTimerDue, watchDenoTimers } from ${
    JSON.stringify(import.meta.resolve("./deno_work.ts"))
  };
    watchDenoTimers();
    const before = denoTimersRead();
    const t = setTimeout(() => {}, 5000);
    const due = nextTimerDue() - performance.now();
    clearTimeout(t);
    postMessage({ before, after: denoTimersRead(), due, cleared: nextTimerDue() });`;
  const w = new Worker(`data:text/javascript,${encodeURIComponent(src)}`, { type: "module" });
  try {
    const got = await new Promise<
      { before: boolean; after: boolean; due: number; cleared: number }
    >(
      (resolve, reject) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => reject(new Error(e.message));
      },
    );
    assert.equal(got.before, false);
    assert.equal(got.after, true);
    near(got.due, 5000, "tracked after the lazy read");
    assert.equal(got.cleared, Infinity);
  } finally {
    w.terminate();
  }
});
