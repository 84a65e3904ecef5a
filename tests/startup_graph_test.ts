// What `deno run --allow-ffi main.ts --kernel ...` loads before it can
// start a VM: its static module graph, as Deno resolves it (`deno info`).
// Start-up cost grows with it, so what only some runs need is loaded on
// demand: the Node layer (node:module's transpiler only on a module cache
// miss, sys/module_cache.ts; node:crypto only with the VNC server), the
// built-in guests' assembler (never: the demo guest is booted from its bytes
// assembled ahead of time, guests/demo_image.ts) and the VNC server.
import assert from "node:assert/strict";

const repo = new URL("..", import.meta.url);

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/** Modules reachable from `root` through static imports only, repo-relative. */
async function staticGraph(root: string): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(root, repo).pathname],
    stderr: "inherit",
  }).output();
  assert.equal(out.code, 0);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
  const edges = new Map<string, string[]>();
  for (const m of info.modules) {
    edges.set(
      m.specifier,
      (m.dependencies ?? []).filter((d) => d.code && !d.isDynamic).map((d) => d.code!.specifier),
    );
  }
  const seen = new Set<string>();
  const stack = [new URL(root, repo).href];
  while (stack.length > 0) {
    const s = stack.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    stack.push(...(edges.get(s) ?? []));
  }
  return new Set([...seen].map((s) => s.replace(repo.href, "")));
}

Deno.test("main.ts loads only no_inspector and start_trace before SIGUSR1 is locked out", async () => {
  const g = await staticGraph("main.ts");
  assert.deepEqual([...g].sort(), [
    "main.ts",
    "sys/libc.ts",
    "sys/no_inspector.ts",
    "sys/start_trace.ts",
  ]);
});

Deno.test("the command's static graph has no Node layer, guest assembler or VNC server", async () => {
  const g = await staticGraph("machine/command.ts");
  assert.ok(g.has("vm/vm.ts") && g.has("vm/builder.ts"), "the graph was read");
  const eager = [...g].filter((s) =>
    s.startsWith("node:") || s.startsWith("guests/") || s === "ui/vnc/display.ts" ||
    s === "ui/vnc/server.ts"
  );
  assert.deepEqual(eager, []);
});

Deno.test("QMP, statistics, the NIC and disk models and the aio pool load only for a VM that uses them", async () => {
  // Opening taps and disk images stays eager (nic_open.ts, disk_open.ts): a
  // user's mistake is one line before anything runs.
  const g = await staticGraph("machine/command.ts");
  assert.ok(g.has("devices/virtio/nic_open.ts") && g.has("machine/disk_open.ts"));
  const eager = [...g].filter((s) =>
    s.startsWith("qmp/") || s === "stats/report.ts" || s === "operate/control_plane.ts" ||
    s === "operate/pidfile.ts" || s === "devices/virtio/net_backend.ts" ||
    s === "devices/virtio/net.ts" || s === "devices/virtio/vhost_net.ts" ||
    s === "machine/disks.ts" || s === "aio/pool_registry.ts" || s === "aio/thread_pool.ts"
  );
  assert.deepEqual(eager, []);
});

Deno.test("main.ts's early vCPU start loads only the Worker server beside the command's graph", async () => {
  // machine/early_start.ts loads before machine/command.ts: what it imports
  // statically delays vCPU 0's Worker and the command's graph, so it is the
  // served-module path and nothing of the machine (no kvm/, devices/, command),
  // but the read-ahead of the kernel and initrd (vm/read_ahead.ts, whose
  // imports are sys/ modules this graph has anyway) and the module cache's
  // bound (sys/cache_eviction.ts, with sys/procfs.ts's directory listing:
  // ~270 lines of libc calls, run only when a miss stores a bundle).
  const g = await staticGraph("machine/early_start.ts");
  assert.deepEqual([...g].sort(), [
    "machine/early_start.ts",
    "sys/bundle_registry.ts",
    "sys/cache_eviction.ts",
    "sys/errno.ts",
    "sys/fd.ts",
    "sys/js_tokens.ts",
    "sys/libc.ts",
    "sys/module_bundle.ts",
    "sys/module_cache.ts",
    "sys/module_shape.ts",
    "sys/procfs.ts",
    "sys/start_trace.ts",
    "sys/worker_url.ts",
    "vcpu/prestart.ts",
    "vm/read_ahead.ts",
  ]);
});

Deno.test("main.ts names no module of the command in a literal import()", async () => {
  // Deno reads the whole graph behind a literal import() before the module
  // runs (~25 ms natively for the command's, measured): main.ts gets the
  // command through machine/early_start.ts importCommand (one bundle run as
  // a script under --allow-ffi, sys/worker_url.ts importBundled) instead.
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("main.ts", repo).pathname],
    stderr: "inherit",
  }).output();
  assert.equal(out.code, 0);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
  // Code dependencies, static and dynamic (a type-only one is not loaded by `deno run`).
  const code = new Map(
    info.modules.map((
      m,
    ) => [m.specifier, (m.dependencies ?? []).flatMap((d) => d.code ? [d.code.specifier] : [])]),
  );
  const all = new Set<string>();
  const stack = [new URL("main.ts", repo).href];
  while (stack.length > 0) {
    const s = stack.pop()!;
    if (all.has(s)) continue;
    all.add(s);
    stack.push(...(code.get(s) ?? []));
  }
  for (const s of [...all]) all.add(s.replace(repo.href, ""));
  assert.ok(all.has("machine/early_start.ts"), "the graph was read");
  assert.ok(!all.has("machine/command.ts"), "machine/command.ts is in main.ts's graph");
  assert.ok(!all.has("vm/vm.ts"), "vm/vm.ts is in main.ts's graph");
});
