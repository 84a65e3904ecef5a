import assert from "node:assert/strict";
import {
  getAffinity,
  getScheduler,
  gettid,
  setAffinity,
  setThreadName,
  threadName,
} from "./thread.ts";

Deno.test("a Worker names and pins its own thread", async () => {
  const src = `
    import { gettid, setThreadName, setAffinity, getAffinity, threadName } from ${
    JSON.stringify(new URL("./thread.ts", import.meta.url).href)
  };
    setThreadName("iothread-7");
    setAffinity([0]);
    self.postMessage({ tid: gettid(), name: threadName(), cpus: getAffinity() });
    self.onmessage = () => self.close();
  `;
  const url = URL.createObjectURL(new Blob([src], { type: "application/typescript" }));
  const w = new Worker(url, { type: "module" });
  const msg = await new Promise<{ tid: number; name: string; cpus: number[] }>((res) => {
    w.onmessage = (e) => res(e.data);
  });
  assert.equal(msg.name, "iothread-7");
  assert.deepEqual(msg.cpus, [0]);
  assert.notEqual(msg.tid, gettid());
  const comm = Deno.readTextFileSync(`/proc/self/task/${msg.tid}/comm`).trim();
  assert.equal(comm, "iothread-7");
  w.terminate();
  URL.revokeObjectURL(url);
});

Deno.test("thread names are truncated to Linux's 15 bytes, affinity is validated", () => {
  const before = threadName();
  const cpus = getAffinity();
  try {
    setThreadName("a-very-long-thread-name");
    assert.equal(threadName(), "a-very-long-thr");
    assert.throws(() => setAffinity([-1]), RangeError);
    assert.equal(typeof getScheduler(), "number");
  } finally {
    setThreadName(before);
    setAffinity(cpus);
  }
});
