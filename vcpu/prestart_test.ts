import assert from "node:assert/strict";
import {
  discardPrestartedVcpuWorkers,
  moduleUrlFor,
  prestartVcpuWorkers,
  takePrestartedVcpuWorker,
} from "./prestart.ts";

const PROBE = new URL("./testdata/preload_probe.ts", import.meta.url).href;

/** The Worker's first message, or a timeout error. */
function firstMessage(w: Worker, ms = 30_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no message from the prestarted Worker")), ms);
    w.onmessage = (e) => {
      clearTimeout(t);
      resolve(e.data);
    };
    w.onerror = (e) => {
      e.preventDefault();
      clearTimeout(t);
      reject(new Error(e.message));
    };
  });
}

Deno.test("a prestarted vCPU Worker imports its preload modules before any init", async () => {
  prestartVcpuWorkers(1, [PROBE]);
  const w = takePrestartedVcpuWorker(0);
  assert.ok(w, "vcpu-0 was prestarted");
  try {
    assert.deepEqual(await firstMessage(w.worker), { preloaded: true, worker: "function" });
    assert.deepEqual(w.modules, [PROBE]);
  } finally {
    w.worker.terminate();
  }
});

Deno.test("prestarting tops up to the count; a Worker is taken once; discard ends the rest", () => {
  prestartVcpuWorkers(1);
  const first = takePrestartedVcpuWorker(0);
  prestartVcpuWorkers(2);
  prestartVcpuWorkers(2); // nothing more: both wait already
  const again = takePrestartedVcpuWorker(0);
  assert.ok(first && again && first !== again, "vcpu-0 was started again after it was taken");
  assert.equal(takePrestartedVcpuWorker(0), undefined, "taken once");
  discardPrestartedVcpuWorkers();
  assert.equal(takePrestartedVcpuWorker(1), undefined, "discarded");
  first.worker.terminate();
  again.worker.terminate();
});

Deno.test("a module the prestarted bundle ran is named in its fragment, not served again", () => {
  const worker = { terminate() {} } as unknown as Worker;
  const bundled = { worker, entry: "blob:null/1234", modules: [PROBE] };
  assert.equal(
    moduleUrlFor(bundled, PROBE),
    `blob:null/1234#denovmm-bundle=${encodeURIComponent(PROBE)}`,
  );
  // Not in the bundle, no bundle (a data: entry imports served files), no Worker:
  // served as workerUrl serves it (under -A, the file URL itself).
  const other = new URL("./worker.ts", import.meta.url).href;
  assert.equal(moduleUrlFor(bundled, other), other);
  assert.equal(
    moduleUrlFor({ worker, entry: "data:text/javascript,", modules: [PROBE] }, PROBE),
    PROBE,
  );
  assert.equal(moduleUrlFor(undefined, PROBE), PROBE);
});
