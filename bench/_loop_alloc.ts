/**
 * Heap bytes the main loop allocates per iteration that dispatched an fd
 * event, for bench/mainloop_bench.ts. A Worker writes an eventfd every 50
 * µs (busy-waiting, so the kicks keep their pace); the loop's handler drains
 * it; a loop timer is armed far ahead (a VMM's loop always has timers, and
 * each iteration reads their clocks). Run with a 64 MiB young generation
 * (`--v8-flags=--min-semi-space-size=64,--max-semi-space-size=64`) so that
 * no scavenge runs between the two `heapUsed` readings, ~2 s apart.
 *
 * ```sh
 * deno run -A --v8-flags=... bench/_loop_alloc.ts [TREE] [sync] [cli]
 * ```
 *
 * TREE (default: this one) is the tree whose main loop runs, for a before /
 * after comparison with a `git archive` copy. `sync` registers the handler
 * and the timer with `sync: true` (types.ts `CallbackOptions`), as the
 * VMM's device kicks and completions are (a tree without the option ignores
 * it). `cli` gives Deno's event loop its turns as the CLI's main loop does
 * (`untrackedYieldNs` 200 ms, not 10 ms: each turn allocates ~7 KB).
 * Deno's event-loop fd is found before the kicking Worker starts, as the
 * VMM's loop finds it before a guest runs (found while the Worker kicked,
 * another runtime's fd that stays readable could be taken for it). Prints
 * one JSON line: bytes per iteration, iterations, the turns given to Deno's
 * event loop meanwhile, and whether the heap shrank (a GC ran between the
 * readings: the reading is not clean).
 *
 * @module
 */
const tree = Deno.realPathSync(Deno.args[0] ?? new URL("..", import.meta.url).pathname);
const sync = Deno.args.includes("sync");
const cli = Deno.args.includes("cli");
const { MainLoop } = await import(`file://${tree}/mainloop/main_loop.ts`);
const { closeFd, eventFd, eventFdDrain } = await import(`file://${tree}/sys/fd.ts`);
const { denoReactorFd } = await import(`file://${tree}/sys/deno_reactor.ts`);
await denoReactorFd();

const kick = eventFd();
const loop = new MainLoop({ name: "alloc", untrackedYieldNs: cli ? 200e6 : undefined });
loop.setFdHandler(kick, { read: () => void eventFdDrain(kick), sync });
const timer = loop.timer("monotonic", () => {}, { sync });
timer.mod(loop.now("monotonic") + 1e12);
const fd = `file://${tree}/sys/fd.ts`;
const clock = `file://${tree}/mainloop/clock.ts`;
const src = `
const { eventFdWrite } = await import(${JSON.stringify(fd)});
const { CLOCK_MONOTONIC, clockNs } = await import(${JSON.stringify(clock)});
self.onmessage = (e) => {
  const stop = new Int32Array(e.data.stop);
  while (Atomics.load(stop, 0) === 0) {
    const t = clockNs(CLOCK_MONOTONIC) + 50000;
    while (clockNs(CLOCK_MONOTONIC) < t) {}
    eventFdWrite(e.data.kick);
  }
  self.postMessage(0);
};`;
const w = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), {
  type: "module",
});
const stop = new SharedArrayBuffer(4);
const stopped = new Promise((r) => (w.onmessage = r));
const running = loop.run();
w.postMessage({ kick, stop });
// Warm-up: the JIT settles, then the reading.
await new Promise((r) => setTimeout(r, 1000));
const h0 = Deno.memoryUsage().heapUsed, i0 = loop.iterations, t0 = loop.denoTurns;
await new Promise((r) => setTimeout(r, 2000));
const h1 = Deno.memoryUsage().heapUsed, i1 = loop.iterations, t1 = loop.denoTurns;
Atomics.store(new Int32Array(stop), 0, 1);
await stopped;
w.terminate();
loop.setFdHandler(kick, null);
loop.stop();
await running;
loop.close();
closeFd(kick);
console.log(JSON.stringify({
  bytesPerIteration: (h1 - h0) / (i1 - i0),
  iterations: i1 - i0,
  denoTurns: t1 - t0,
  shrank: h1 < h0,
}));
