// For prestart_test.ts: a module a prestarted vCPU Worker preloads. It
// reports from inside the Worker that it was evaluated there.
(self as unknown as Worker).postMessage({ preloaded: true, worker: typeof Deno.dlopen });
