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

  vcpu.terminate();
  await io.stop();
  await pool.close();
  closeFd(fd);
  for (const w of empty) w.terminate();
  loop.stop();
  await running;
  loop.close();
}
