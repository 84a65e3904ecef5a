// Test fixture: schedules a BH, waits until the loop has run it, repeats.
import { SharedBh } from "../bh.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
};

self.onmessage = (e: MessageEvent) => {
  const { handle, counter, rounds } = e.data;
  const bh = new SharedBh(handle);
  const c = new Int32Array(counter);
  for (let r = 0; r < rounds; r++) {
    bh.schedule();
    // Returns when the BH has bumped the counter past r.
    while (Atomics.wait(c, 0, r, 5000) === "timed-out") {
      self.postMessage(`stuck at round ${r}`);
      return;
    }
    // Vary the phase so the loop is sometimes asleep, sometimes busy.
    if (r % 3 === 0) Atomics.wait(c, 1, 0, 0.05 * (r % 7));
  }
  self.postMessage("done");
};
