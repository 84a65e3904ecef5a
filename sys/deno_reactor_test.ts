import assert from "node:assert/strict";
import { denoReactorFd, denoTurn } from "./deno_reactor.ts";
import { POLLIN, ppoll } from "./poll.ts";
import { closeFd, eventFd, eventFdWrite } from "./fd.ts";
import { libc } from "./libc.ts";
import { viewAddress } from "./address.ts";

function pollOne(fd: number, ms: number): number {
  const fds = new Int32Array([fd, POLLIN]);
  const ts = new BigInt64Array([BigInt(Math.floor(ms / 1000)), BigInt((ms % 1000) * 1e6)]);
  const n = ppoll(
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(fds))),
    1n,
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(ts))),
  );
  return n === 1 ? fds[1] >>> 16 : 0;
}

Deno.test("Deno's event-loop fd is found and is an epoll instance", async () => {
  const fd = await denoReactorFd();
  assert.ok(fd >= 0, "no eventpoll fd found");
  assert.equal(Deno.readLinkSync(`/proc/self/fd/${fd}`), "anon_inode:[eventpoll]");
  assert.equal(await denoReactorFd(), fd, "found once");
});

Deno.test("Deno's fd turns readable when a Worker posts to this thread, while it is blocked", async () => {
  const fd = await denoReactorFd();
  const w = new Worker(
    `data:text/javascript,self.onmessage=()=>setTimeout(()=>self.postMessage("hi"),50);` +
      `self.postMessage("up")`,
    { type: "module" },
  );
  let next = Promise.withResolvers<unknown>();
  w.onmessage = (e) => next.resolve(e.data);
  try {
    assert.equal(await next.promise, "up");
    next = Promise.withResolvers<unknown>();
    await denoTurn(); // consume whatever Deno had pending
    w.postMessage(null);
    const t0 = performance.now();
    // Blocked here, Deno cannot run: only its fd can tell that a message came.
    const rev = pollOne(fd, 5000);
    const dt = performance.now() - t0;
    assert.equal(rev & POLLIN, POLLIN);
    assert.ok(dt < 4000, `woke after ${dt.toFixed(0)} ms`);
    assert.equal(await next.promise, "hi");
  } finally {
    w.terminate();
  }
});

Deno.test("a Worker finds its own runtime's fd, not this thread's", async () => {
  const mine = await denoReactorFd();
  const url = new URL("./deno_reactor.ts", import.meta.url).href;
  const w = new Worker(
    `data:text/javascript,import{denoReactorFd}from"${url}";` +
      `self.postMessage(await denoReactorFd())`,
    { type: "module" },
  );
  try {
    const theirs = await new Promise((r) => (w.onmessage = (e) => r(e.data)));
    assert.equal(typeof theirs, "number");
    assert.ok((theirs as number) >= 0, "the Worker found none");
    assert.notEqual(theirs, mine);
  } finally {
    w.terminate();
  }
});

Deno.test("an epoll fd readable all along is never taken for this thread's", async () => {
  const mine = await denoReactorFd();
  // Another epoll instance with a readable eventfd in its set: readable
  // until closed, as another runtime's can be while its thread is busy.
  const SYS_epoll_create1 = 291n, SYS_epoll_ctl = 233n, EPOLL_CTL_ADD = 1n;
  const epfd = Number(libc.syscall(SYS_epoll_create1, 0n, 0n, 0n, 0n, 0n, 0n));
  assert.ok(epfd >= 0);
  const efd = eventFd();
  try {
    eventFdWrite(efd);
    const ev = new Uint8Array(12); // struct epoll_event (packed on x86-64)
    new DataView(ev.buffer).setUint32(0, POLLIN, true);
    assert.equal(
      libc.syscall(
        SYS_epoll_ctl,
        BigInt(epfd),
        EPOLL_CTL_ADD,
        BigInt(efd),
        viewAddress(ev),
        0n,
        0n,
      ),
      0n,
    );
    assert.equal(pollOne(epfd, 0) & POLLIN, POLLIN, "the other epoll fd is readable");
    const url = new URL("./deno_reactor.ts", import.meta.url).href;
    for (let i = 0; i < 3; i++) {
      // A fresh instance of the module probes again.
      const { denoReactorFd: probeAgain } = await import(`${url}?probe=${i}`);
      const found = await probeAgain();
      assert.notEqual(found, epfd, "took the other epoll fd");
      assert.ok(found === mine || found === -1, `took fd ${found}`);
    }
  } finally {
    closeFd(efd);
    closeFd(epfd);
  }
});
