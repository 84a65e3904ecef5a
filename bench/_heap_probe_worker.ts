// For bench/memory_bench.ts: a Worker that loads one module graph (a thread
// role's entry module, or nothing) and reports its isolate's V8 heap
// (Deno.memoryUsage() is per isolate), then stays until terminated.
const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<string>) => void) | null;
  postMessage(m: unknown): void;
};
self.onmessage = async (e: MessageEvent<string>) => {
  self.onmessage = null;
  if (e.data) await import(e.data);
  // Let start-up garbage go the way it would in an idle thread.
  await new Promise((r) => setTimeout(r, 200));
  const { heapTotal, heapUsed, external } = Deno.memoryUsage();
  self.postMessage({ heapTotal, heapUsed, external });
};
