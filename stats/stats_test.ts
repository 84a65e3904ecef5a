import assert from "node:assert/strict";
import { VCPU_EXIT_KINDS, VCPU_EXITS, VmControl } from "../vcpu/vm_control.ts";
import { LoopStats } from "../mainloop/loop_stats.ts";
import { MainLoop } from "../mainloop/main_loop.ts";
import { ThreadPool } from "../aio/thread_pool.ts";
import { closeFd, O_RDONLY, openFile } from "../sys/fd.ts";
import { gettid } from "../sys/thread.ts";
import { summarize, takeSample } from "./sample.ts";
import { formatStatsLine, queryStatsEntries, StatsReporter } from "./report.ts";

function bump(ctl: VmControl, cpu: number, kind: number, n: number): void {
  const w = ctl.words;
  w[ctl.vcpuWord(cpu, VCPU_EXITS)] += n;
  w[ctl.vcpuWord(cpu, VCPU_EXIT_KINDS) + kind] += n;
}

Deno.test("vCPU exit counters become exits/s by reason, across a 32-bit wrap", () => {
  const ctl = new VmControl(new SharedArrayBuffer(VmControl.bytes(2)));
  const tid = gettid();
  const src = { control: () => ctl, vcpuTids: () => [tid, tid] };
  // vCPU 1's counters sit just below the wrap.
  ctl.words[ctl.vcpuWord(1, VCPU_EXITS)] = -10;
  ctl.words[ctl.vcpuWord(1, VCPU_EXIT_KINDS) + 2] = -10;
  const a = takeSample(src);
  bump(ctl, 0, 1, 3000); // io
  bump(ctl, 0, 2, 500); // mmio
  bump(ctl, 1, 2, 30); // mmio, wrapping
  const b = takeSample(src);
  b.atMs = a.atMs + 500; // half a second later
  const s = summarize(b, a);
  assert.equal(s["interval-s"], 0.5);
  assert.equal(s.vcpus[0]["exits-per-s"], 7000);
  assert.deepEqual(s.vcpus[0]["exits-per-s-by-reason"], { io: 6000, mmio: 1000, hlt: 0, intr: 0 });
  assert.equal(s.vcpus[1]["exits-per-s"], 60);
  assert.equal(s.vcpus[1]["exits-per-s-by-reason"].mmio, 60);
  assert.equal(s.vcpus[1].exits, 20);
  const line = formatStatsLine(s);
  assert.match(
    line,
    /^denovmm: stats: vcpu0 7\.0k exits\/s \(io 6\.0k, mmio 1\.0k\) guest \d+% vmm \d+%/,
  );
  assert.ok(!line.includes("\n"));
  const q = queryStatsEntries(s, "vcpu") as { "qom-path": string; stats: { name: string }[] }[];
  assert.equal(q[1]["qom-path"], "/machine/unattached/device[1]");
  assert.ok(q[0].stats.some((x) => x.name === "io-exits-per-s"));
});

Deno.test("per-thread CPU time: a spinning thread shows up busy, an idle one does not", async () => {
  const code =
    `self.onmessage = (e) => { const end = Date.now() + e.data; while (Date.now() < end) {} ;
    self.postMessage(0); };`;
  const w = new Worker(URL.createObjectURL(new Blob([code])), { type: "module" });
  const r = new StatsReporter({ control: () => undefined, vcpuTids: () => [] });
  const done = new Promise((res) => w.onmessage = res);
  w.postMessage(600);
  await done;
  const s = r.next();
  w.terminate();
  const busiest = s.threads.reduce((a, b) => (b["cpu-pct"] > a["cpu-pct"] ? b : a));
  assert.ok(s["interval-s"] >= 0.5, `${s["interval-s"]}`);
  // The host's cores are shared (other work may take most of them): ask for
  // a lead and a visible share, not a full core.
  assert.match(busiest.name, /^worker-\d+$/, JSON.stringify(s.threads));
  assert.ok(busiest["cpu-pct"] >= 5, `a thread spun for 0.6 s: ${JSON.stringify(busiest)}`);
  assert.ok(s.threads.every((t) => t["thread-id"] > 0 && typeof t.name === "string"));
});

Deno.test("main loop statistics: iterations, wake-ups and a p99 that sees a slow callback", async () => {
  const st = new LoopStats();
  for (let i = 0; i < 98; i++) st.record(true, 0.002);
  st.record(true, 3); // 3 ms
  st.record(false, 0.001);
  assert.equal(st.iterations, 100);
  assert.equal(st.wakeups, 99);
  assert.equal(st.percentileUs(0.5), 4, "2 µs lies in [2, 4)");
  assert.equal(st.percentileUs(0.995), 4096);
  const loop = new MainLoop();
  const stats = loop.enableStats();
  const running = loop.run();
  let n = 0;
  const bh = loop.bh(() => {
    if (++n === 20) {
      const end = performance.now() + 5;
      while (performance.now() < end) { /* a slow callback */ }
    }
    if (n < 100) bh.schedule();
    else loop.stop();
  });
  bh.schedule();
  await running;
  loop.close();
  assert.ok(stats.iterations >= 100 && stats.wakeups >= 100, `${stats.iterations}`);
  assert.ok(stats.maxUs >= 5000, `${stats.maxUs}`);
  assert.ok(stats.percentileUs(0.5) < 5000);
});

Deno.test("aio pools report depth, busy threads and completions", async () => {
  const loop = new MainLoop();
  const running = loop.run();
  const pool = new ThreadPool(loop, { maxThreads: 2 });
  const src = { control: () => undefined, vcpuTids: () => [], loop: loop.enableStats() };
  const before = takeSample(src);
  const fd = openFile("/dev/zero", O_RDONLY);
  const buf = new Uint8Array(4096);
  await Promise.all(
    Array.from(
      { length: 10 },
      (_, i) =>
        new Promise((done) => pool.submit({ op: "pread", fd, offset: i * 4096, buf }, done)),
    ),
  );
  const s = summarize(takeSample(src), before);
  closeFd(fd);
  const mine = s.aio.find((a) => a.completions === 10);
  assert.ok(mine, JSON.stringify(s.aio));
  assert.equal(mine["queue-depth"], 0);
  assert.ok(mine.threads >= 1 && mine.threads <= 2);
  assert.ok(s["main-loop"]!["wakeups-per-s"] > 0);
  const vm = queryStatsEntries(s, "vm") as { stats: { name: string }[] }[];
  assert.ok(vm[0].stats.some((x) => x.name.endsWith("-completions")));
  await pool.close();
  assert.equal(takeSample(src).aio.some((a) => a.completed === 10), false, "closed pools leave");
  loop.stop();
  await running;
  loop.close();
});
