// Helper Worker for bench/mainloop_bench.ts: wakes the main loop on request
// and records when (CLOCK_MONOTONIC ns, shared with the main thread).
import { SharedBh } from "../mainloop/bh.ts";
import { CLOCK_MONOTONIC, clockNs } from "../mainloop/clock.ts";
import { libc } from "../sys/libc.ts";
import { eventFdRead, eventFdWrite } from "../sys/fd.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
};

self.onmessage = (e: MessageEvent) => {
  const { mode, handle, sync, times, rounds, efd, gapNs } = e.data;
  const ctl = new Int32Array(sync);
  const t = new Float64Array(times);
  if (mode === "wake" || mode === "fd") {
    // ctl[0]: round the main loop has finished. Sleep gapNs so the loop is
    // asleep, then stamp the time and schedule its BH (or write its eventfd).
    const bh = mode === "wake" ? new SharedBh(handle) : null;
    for (let r = 0; r < rounds; r++) {
      let v: number;
      while ((v = Atomics.load(ctl, 0)) < r) Atomics.wait(ctl, 0, v);
      const until = clockNs(CLOCK_MONOTONIC) + gapNs;
      Atomics.wait(ctl, 1, 0, gapNs / 1e6);
      while (clockNs(CLOCK_MONOTONIC) < until) { /* the loop is asleep by now */ }
      t[r] = clockNs(CLOCK_MONOTONIC);
      if (bh) bh.schedule();
      else eventFdWrite(efd);
    }
  } else {
    // Reference design: this thread blocks in a synchronous poll(2) on an
    // eventfd; the main thread stamps and writes it.
    const pfd = new Int32Array(2);
    pfd[0] = efd;
    pfd[1] = 1; // events = POLLIN
    const pb = new Uint8Array(pfd.buffer);
    for (let r = 0; r < rounds; r++) {
      libc.poll(pb, 1n, -1);
      t[r] = clockNs(CLOCK_MONOTONIC) - t[r];
      eventFdRead(efd);
      Atomics.store(ctl, 0, r + 1);
      Atomics.notify(ctl, 0);
    }
  }
  self.postMessage("done");
};
