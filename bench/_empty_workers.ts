// The floor for bench/memory_bench.ts: `deno run --allow-ffi` with N empty
// Workers (blob: URLs, so no read permission is needed, as for the VMM's own
// Workers). Prints "ready" once every Worker runs, then lives until stdin
// closes. `--arena-max=N` first calls mallopt(M_ARENA_MAX, N); `--trim`
// gives start-up memory back as the VMM does (sys/trim_memory.ts).
const n = Number(Deno.args[0] ?? 0);
const arenaMax = Deno.args.find((a) => a.startsWith("--arena-max="));
if (arenaMax) {
  const libc = Deno.dlopen("libc.so.6", { mallopt: { parameters: ["i32", "i32"], result: "i32" } });
  libc.symbols.mallopt(-8, Number(arenaMax.split("=")[1]));
}
const src = `postMessage("up");`;
const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
const workers: Worker[] = [];
for (let i = 0; i < n; i++) {
  const w = new Worker(url, { type: "module", name: `empty-${i}` });
  await new Promise((r) => (w.onmessage = r));
  workers.push(w);
}
URL.revokeObjectURL(url);
if (Deno.args.includes("--trim")) {
  // What the VMM does 300 ms after a machine is built (vm/vm.ts).
  const { dropCleanFilePages, trimMalloc } = await import("../sys/trim_memory.ts");
  await new Promise((r) => setTimeout(r, 300));
  trimMalloc();
  dropCleanFilePages();
}
console.log("ready");
for await (const _ of Deno.stdin.readable) {
  // wait for EOF
}
for (const w of workers) w.terminate();
