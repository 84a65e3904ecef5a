/**
 * Fuzzes virtio-blk over virtio-pci (see _fuzz_body.ts for what is thrown
 * at it and the oracles it must satisfy), once with a model aio engine that
 * completes in random order and runs out of slots, and once each through
 * the real thread pool and io_uring. Each run happens in a Worker watched
 * for progress: a device that stops making progress for HANG_MS fails the
 * test with the seed and iteration. Reproduce with DENOVMM_FUZZ_SEED=<seed>;
 * scale with DENOVMM_FUZZ_ITERATIONS (model) / DENOVMM_FUZZ_REAL_ITERATIONS.
 */
import assert from "node:assert/strict";
import { ioUringAvailable } from "../../aio/io_uring.ts";
import type { FuzzBackend, FuzzReport } from "./_fuzz_body.ts";
import { VIRTIO_VIOLATIONS } from "./queue.ts";

const HANG_MS = 20_000;

async function fuzz(backend: FuzzBackend, iterations: number): Promise<FuzzReport> {
  const env = Deno.env.get("DENOVMM_FUZZ_SEED");
  const seed = env ? Number(env) : (Math.random() * 2 ** 32) >>> 0;
  console.log(
    `fuzz ${backend}: seed ${seed} (DENOVMM_FUZZ_SEED=${seed} to reproduce), ${iterations} iterations`,
  );
  const progress = new Int32Array(new SharedArrayBuffer(8));
  const worker = new Worker(new URL("./_fuzz_worker.ts", import.meta.url), { type: "module" });
  let timer: ReturnType<typeof setInterval> | undefined;
  try {
    return await new Promise<FuzzReport>((resolve, reject) => {
      let last = -1, since = Date.now();
      timer = setInterval(() => {
        const now = Atomics.load(progress, 0);
        if (now !== last) {
          last = now;
          since = Date.now();
        } else if (Date.now() - since > HANG_MS) {
          reject(new Error(`Fuzz (${backend}, seed ${seed}) hung at iteration ${now}`));
        }
      }, 250);
      worker.onmessage = (e: MessageEvent<{ report?: FuzzReport; error?: string }>) => {
        if (e.data.report) resolve(e.data.report);
        else reject(new Error(e.data.error));
      };
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`Fuzz worker failed: ${e.message}`));
      };
      worker.postMessage({ seed, iterations, backend, progress: progress.buffer });
    });
  } finally {
    clearInterval(timer);
    worker.terminate();
  }
}

function show(backend: string, r: FuzzReport): void {
  const q = r.requests;
  console.log(
    `fuzz ${backend}: ${r.iterations} iterations in ${r.seconds.toFixed(1)} s; requests started: ` +
      `IN ${q.in}, OUT ${q.out}, FLUSH ${q.flush}, GET_ID ${q.getId}, DISCARD ${q.discard}, ` +
      `WRITE_ZEROES ${q.writeZeroes}, other types ${q.unsupported}; device broken ${r.broken} ` +
      `times, ${r.recoveries} verified recoveries, ${r.interrupts} interrupts`,
  );
  console.log(`fuzz ${backend}: violations ${JSON.stringify(r.violations)}`);
  for (const v of Object.keys(r.violations)) {
    assert.ok((VIRTIO_VIOLATIONS as readonly string[]).includes(v), v);
  }
}

Deno.test("fuzz: virtio-blk on a model engine (random completion order, full queues)", async () => {
  const iterations = Number(Deno.env.get("DENOVMM_FUZZ_ITERATIONS") ?? 100_000);
  const r = await fuzz("model", iterations);
  show("model", r);
  assert.ok(r.broken > 0, "the fuzzer should trip validation");
  assert.ok(r.recoveries > 0, "the fuzzer should verify recoveries");
  if (iterations >= 20_000) {
    const q = r.requests;
    for (const [k, n] of Object.entries(q)) assert.ok(n > 0, `no ${k} request reached the device`);
  }
});

for (const backend of ["threads", "io_uring"] as const) {
  const skip = backend === "io_uring" ? ioUringAvailable() : null;
  Deno.test({
    name: `fuzz: virtio-blk through the real ${backend} engine`,
    ignore: skip !== null,
    async fn() {
      const iterations = Number(Deno.env.get("DENOVMM_FUZZ_REAL_ITERATIONS") ?? 3000);
      const r = await fuzz(backend, iterations);
      show(backend, r);
      assert.ok(r.requests.in + r.requests.out > 0, "real I/O reached the engine");
      assert.ok(r.recoveries > 0);
    },
  });
}
