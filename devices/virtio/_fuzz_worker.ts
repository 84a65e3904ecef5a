/**
 * Worker entry of the virtio-blk fuzzer: runs {@link fuzzBlock} and posts
 * its report or its finding. Running in a Worker lets the test terminate a
 * hung device and say where it hung.
 *
 * @module
 */
import { type FuzzBackend, fuzzBlock } from "./_fuzz_body.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
};

self.onmessage = async (
  e: MessageEvent<
    { seed: number; iterations: number; backend: FuzzBackend; progress: SharedArrayBuffer }
  >,
) => {
  const { seed, iterations, backend, progress } = e.data;
  try {
    const report = await fuzzBlock({ seed, iterations, backend }, new Int32Array(progress));
    self.postMessage({ report });
  } catch (err) {
    self.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
};
