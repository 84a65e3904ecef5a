// For worker_start_bench.ts, run as `deno run --allow-ffi` (the VMM's only
// permission): serves one Worker entry the way the VMM does
// (sys/worker_url.ts; DENOVMM_NO_BUNDLE=1 for the blob-module graph), starts
// it and prints, as JSON, the main thread's time to serve it and the time
// from `new Worker` to its first message. It then waits 300 ms before it
// exits: Deno writes a module's V8 code cache after the module ran, and the
// next start should find what a real (longer-lived) VMM process leaves.
import { servedModuleCounts, workerBundleUrl } from "../sys/worker_url.ts";

const ROOT = new URL("../", import.meta.url);
const MARK = new URL("./_worker_start_mark.ts", import.meta.url);
/** What each kind of Worker loads: the vCPU thread's prestarted entry, an aio thread. */
const ENTRIES: Record<string, string[]> = {
  vcpu: [
    "vcpu/worker.ts",
    "kvm/vcpu_backend.ts",
    "machine/pc_devices.ts",
    "machine/pci_devices.ts",
  ],
  aio: ["aio/_worker.ts"],
};

const kind = Deno.args[0];
const t0 = performance.now();
const url = kind === "empty"
  ? "data:text/javascript,postMessage(0)"
  : workerBundleUrl([...ENTRIES[kind].map((e) => new URL(e, ROOT)), MARK]);
const served = performance.now();
const w = new Worker(url, { type: "module" });
w.onmessage = () => {
  const startMs = performance.now() - served;
  console.log(JSON.stringify({
    serveMs: served - t0,
    startMs,
    counts: servedModuleCounts(),
  }));
  setTimeout(() => {
    w.terminate();
  }, 300);
};
w.onerror = (e) => {
  console.log(JSON.stringify({ error: e.message }));
  e.preventDefault();
  w.terminate();
};
