/**
 * The main loop alone at a guest ping's pace: a Worker writes an eventfd
 * (the queue kick) every 200 ms, the loop's handler drains it and writes a
 * second one (the irqfd); prints the main thread's CPU per kick and the
 * loop's turns to Deno and iterations. No KVM, no device: what the loop
 * itself costs between packets. Run by `net_ping_cpu_bench.ts --loop-only`.
 *
 * ```sh
 * deno run -A bench/_loop_kick_cpu.ts TREE [KICKS] [untrackedYieldNs]
 * ```
 *
 * @module
 */
const tree = Deno.realPathSync(Deno.args[0] ?? new URL("..", import.meta.url).pathname);
const kicks = Number(Deno.args[1] ?? 50);
const untracked = Deno.args[2] ? Number(Deno.args[2]) : undefined;
const { MainLoop } = await import(`file://${tree}/mainloop/main_loop.ts`);
const { eventFd, eventFdDrain, eventFdWrite } = await import(`file://${tree}/sys/fd.ts`);

/** This thread's CPU ms (utime + stime, 10 ms ticks). */
function threadCpuMs(): number {
  const s = Deno.readTextFileSync("/proc/thread-self/stat");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

const kick = eventFd();
const irq = eventFd();
const loop = new MainLoop(untracked === undefined ? {} : { untrackedYieldNs: untracked });
let n = 0;
loop.setFdHandler(kick, {
  read() {
    eventFdDrain(kick);
    eventFdWrite(irq);
    n++;
  },
});
const src = `
const { eventFdWrite } = await import("file://${tree}/sys/fd.ts");
self.onmessage = (e) => {
  let i = 0;
  const tick = () => {
    eventFdWrite(e.data);
    if (++i < ${kicks}) setTimeout(tick, 200);
    else self.postMessage("done");
  };
  setTimeout(tick, 200);
};`;
const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
const worker = new Worker(url, { type: "module" });
const running = loop.run();
await new Promise((r) => setTimeout(r, 300));
const c0 = threadCpuMs(), t0 = performance.now();
const turns0 = loop.denoTurns, it0 = loop.iterations;
worker.postMessage(kick);
await new Promise((r) => worker.onmessage = r);
await new Promise((r) => setTimeout(r, 100));
const cpu = threadCpuMs() - c0;
console.log(
  `${tree}${untracked === undefined ? "" : ` untrackedYieldNs=${untracked}`}: ${n} kicks in ${
    ((performance.now() - t0) / 1000).toFixed(1)
  } s, main thread ${cpu} ms CPU (${(cpu / n).toFixed(2)} ms per kick), ${
    loop.denoTurns - turns0
  } turns to Deno, ${loop.iterations - it0} iterations`,
);
worker.terminate();
loop.stop();
await running;
Deno.exit(0);
