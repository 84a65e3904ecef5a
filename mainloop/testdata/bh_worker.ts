// Test fixture: schedules every BH handle it is given, from this Worker's thread.
import { SharedBh } from "../bh.ts";
import type { BhHandle } from "../types.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
};

self.onmessage = (e: MessageEvent<{ handles: BhHandle[]; start: Int32Array }>) => {
  const bhs = e.data.handles.map((h) => new SharedBh(h));
  // Wait for the common start signal so all Workers race.
  Atomics.wait(e.data.start, 0, 0);
  for (const bh of bhs) bh.schedule();
  self.postMessage("done");
};
