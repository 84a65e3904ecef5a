/**
 * Run by mainloop/node_layer_turns_test.ts in a process of its own (the
 * probe for Deno's fd is reliable under `deno run`, and the Node layer,
 * once started, stays): starts Deno's Node compatibility layer, keeps a
 * main loop busy beside Deno's fd for 2.5 s, and prints what it saw as JSON.
 *
 * @module
 */
import { MainLoop } from "../main_loop.ts";
import { denoReactorFd } from "../../sys/deno_reactor.ts";

const errors: string[] = [];
console.error = (...a: unknown[]) => void errors.push(a.join(" "));
if (Deno.args[0] === "node") {
  // What a module-cache miss (the transpiler) or a VNC WebSocket does.
  (globalThis as unknown as { process: { getBuiltinModule: unknown } }).process.getBuiltinModule;
}
const found = await denoReactorFd();
const loop = new MainLoop({ ownThreadNs: 1e10 });
const running = loop.run();
// Work for the loop every 5 ms, so it stays on its own thread.
const kick = loop.bh(() => {});
const tick = setInterval(() => kick.schedule(), 5);
await new Promise((r) => setTimeout(r, 2000));
const turns = loop.denoTurns;
const t0 = performance.now();
await new Promise((r) => setTimeout(r, 500));
const rate = (loop.denoTurns - turns) / ((performance.now() - t0) / 1000);
clearInterval(tick);
loop.stop();
await running;
loop.close();
console.log(JSON.stringify({ found, rate, turns: loop.denoTurns, errors }));
