/**
 * For bench/memory_bench.ts, without KVM: the process's RSS (VmRSS) after
 * each kind of thread the VMM starts, as a delta over the step before.
 * Threads share one address space, so a thread's own RSS is not a thing;
 * what each role adds is (mostly its V8 isolate and the modules it loads).
 * Reference: an empty Deno Worker (an isolate and nothing else), measured in
 * the same run.
 *
 * @module
 */
import { MainLoop } from "../mainloop/main_loop.ts";
import { IOThread } from "../mainloop/iothread.ts";
import { ThreadPool } from "../aio/thread_pool.ts";
import { closeFd, O_RDONLY, openFile } from "../sys/fd.ts";
import { statusKib } from "./_rss_breakdown.ts";

const settle = (ms = 300) => new Promise((r) => setTimeout(r, ms));

/** Prints the table of RSS by thread role. */
export async function rolesTable(): Promise<void> {
  const rows: [string, number][] = [];
  let last = statusKib("self", "VmRSS");
  const step = (name: string) => {
    const now = statusKib("self", "VmRSS");
    rows.push([name, now - last]);
    last = now;
  };

  rows.push(["process after loading the bench's modules (VmRSS)", last]);
  const loop = new MainLoop({ name: "bench" });
  const running = loop.run();
  await settle();
  step("main loop running");

  const empty: Worker[] = [];
  for (let i = 0; i < 2; i++) {
    const w = new Worker(new URL("./_empty_worker.ts", import.meta.url).href, { type: "module" });
    await new Promise((r) => (w.onmessage = r));
    empty.push(w);
  }
  await settle();
  step("2 empty Workers (reference: an isolate alone), together");

  const pool = new ThreadPool(loop, { minThreads: 4, maxThreads: 4 });
  const fd = openFile("/dev/zero", O_RDONLY);
  const buf = new Uint8Array(4096);
  await Promise.all(
    Array.from({ length: 8 }, () => new Promise((r) => pool.submit({ op: "pread", fd, buf }, r))),
  );
  await settle();
  step(`aio pool, ${pool.threads} threads (aio-N), together`);

  const io = await IOThread.start({ name: "iothread-bench" });
  await settle();
  step("1 iothread (its own MainLoop)");

  const vcpu = new Worker(new URL("../vcpu/worker.ts", import.meta.url).href, {
    type: "module",
    name: "vcpu-bench",
  });
  vcpu.onmessage = () => {};
  await settle(1500);
  step("1 vCPU Worker with its modules loaded (no KVM: not started)");

  console.log("\nRSS by thread role (KiB; each row is the increase over the row before)\n");
  console.log("| step | RSS KiB | per thread KiB |");
  console.log("|---|---:|---:|");
  for (const [name, kib] of rows) {
    const n = name.startsWith("2 ") ? 2 : name.startsWith("aio") ? pool.threads : 1;
    console.log(
      `| ${name} | ${kib.toLocaleString("en-US")} | ${
        Math.round(kib / n).toLocaleString("en-US")
      } |`,
    );
  }

  await heapTable();

  vcpu.terminate();
  await io.stop();
  await pool.close();
  closeFd(fd);
  for (const w of empty) w.terminate();
  loop.stop();
  await running;
  loop.close();
}

interface Heap {
  heapTotal: number;
  heapUsed: number;
  external: number;
}

/** One isolate's V8 heap with a role's module graph loaded (bench/_heap_probe_worker.ts). */
async function probe(entry: string): Promise<Heap> {
  const w = new Worker(new URL("./_heap_probe_worker.ts", import.meta.url).href, {
    type: "module",
  });
  const got = new Promise<Heap>((r) => (w.onmessage = (e) => r(e.data)));
  w.postMessage(entry && new URL(entry, import.meta.url).href);
  const h = await got;
  w.terminate();
  return h;
}

/** Prints each role's isolate heap: V8 heap statistics per isolate. */
async function heapTable(): Promise<void> {
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  const rows: [string, Heap][] = [
    ["empty Worker (the runtime's own)", await probe("")],
    ["vCPU Worker's modules (vcpu/worker.ts)", await probe("../vcpu/worker.ts")],
    ["aio thread's modules (aio/_worker.ts)", await probe("../aio/_worker.ts")],
    [
      "iothread's modules (mainloop/_iothread_worker.ts)",
      await probe("../mainloop/_iothread_worker.ts"),
    ],
  ];
  await import("../machine/command.ts");
  rows.unshift(["main thread, the bench's and the VMM's modules", Deno.memoryUsage()]);
  console.log("\nV8 heap per isolate (Deno.memoryUsage() inside it, MiB)\n");
  console.log("| isolate | heap total | heap used | external |");
  console.log("|---|---:|---:|---:|");
  for (const [name, h] of rows) {
    console.log(`| ${name} | ${mib(h.heapTotal)} | ${mib(h.heapUsed)} | ${mib(h.external)} |`);
  }
}
