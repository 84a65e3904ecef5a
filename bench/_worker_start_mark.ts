// For worker_start_bench.ts: the last module of a measured Worker's entry; it
// reports that everything before it loaded and ran.
(self as unknown as Worker).postMessage({ loadedMs: performance.now() });
