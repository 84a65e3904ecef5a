// Run as the VMM runs (deno run --allow-ffi): checks and installs the
// placement given as JSON in argv[0], starts Workers named as argv[1..],
// and prints {main, threads: {name: tid}} once they have applied their roles.
// A PlacementError ends it with one line on stderr and exit 1, as main.ts does.
import { checkPlacement, installPlacement } from "../install.ts";
import { PlacementError } from "../policy.ts";
import { gettid } from "../../sys/thread.ts";
import { workerUrl } from "../../sys/worker_url.ts";

const [flagsJson, ...names] = Deno.args;
try {
  const p = checkPlacement(JSON.parse(flagsJson), { cpus: 2, iothreads: [0] });
  if (p) installPlacement(p);
} catch (e) {
  if (e instanceof PlacementError) {
    console.error(`denovmm: ${e.message}`);
    Deno.exit(1);
  }
  throw e;
}
const threads: Record<string, number> = {};
const workers: Worker[] = [];
for (const name of names) {
  const w = new Worker(workerUrl(new URL("./_probe_worker.ts", import.meta.url)), {
    type: "module",
  });
  workers.push(w);
  threads[name] = await new Promise<number>((res) => {
    w.onmessage = (e) => res(e.data);
    w.postMessage(name);
  });
}
console.log(JSON.stringify({ main: gettid(), pid: Deno.pid, threads }));
// Stay alive until told (stdin closes) so the test can read /proc.
const buf = new Uint8Array(1);
await Deno.stdin.read(buf).catch(() => null);
for (const w of workers) w.terminate();
