// Helper for bench/mainloop_bench.ts, run inside an iothread through
// IOThread.call: a BH that records wake-up latency (CLOCK_MONOTONIC ns since
// the Worker's stamp) into shared memory and lets the waker go on.
import type { MainLoop } from "../mainloop/main_loop.ts";
import type { BhHandle } from "../mainloop/types.ts";
import { CLOCK_MONOTONIC, clockNs } from "../mainloop/clock.ts";

/**
 * Creates the recording BH on the iothread's loop.
 *
 * @param loop the iothread's loop
 * @param sync ctl words shared with the waker (word 0: rounds done)
 * @param times the waker's stamps (f64 per round)
 * @param lat where latencies go (f64 per round)
 * @returns the BH's handle for the waker
 */
export function setupWake(
  loop: MainLoop,
  sync: SharedArrayBuffer,
  times: SharedArrayBuffer,
  lat: SharedArrayBuffer,
): BhHandle {
  const ctl = new Int32Array(sync);
  const t = new Float64Array(times);
  const out = new Float64Array(lat);
  let r = 0;
  const bh = loop.bh(() => {
    out[r] = clockNs(CLOCK_MONOTONIC) - t[r];
    r++;
    Atomics.store(ctl, 0, r);
    Atomics.notify(ctl, 0);
  });
  return bh.handle();
}
