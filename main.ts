/**
 * The denovmm command line:
 *
 *   deno run --allow-ffi main.ts --kernel bzImage [--initrd F] [--append S]
 *     [--cpus N] [--memory SIZE] [--disk SPEC]...
 *
 * With no --kernel it boots the bundled demo guest. The only reader of
 * Deno.args; the command itself is machine/command.ts.
 *
 * This module imports nothing but sys/no_inspector.ts (and its libc.ts) and
 * sys/start_trace.ts (which imports nothing), so
 * SIGUSR1 is ignored and locked before the rest of the program is even
 * loaded: Deno would otherwise open its V8 inspector on that signal (see
 * sys/no_inspector.ts for the mechanism and the start-up window).
 *
 * Then, before the command's own module graph loads, the vCPU threads'
 * module graphs start being read and transpiled on a thread of their own
 * (sys/worker_url.ts), so that work overlaps the main thread's loading.
 *
 * @module
 */
import { closeInspectorDoor } from "./sys/no_inspector.ts";
import { traceMark, tracePrint } from "./sys/start_trace.ts";

/** What every VM's vCPU threads load (sys/worker_url.ts serves it without read permission). */
const WORKER_MODULES = [
  "./vcpu/worker.ts",
  "./kvm/vcpu_backend.ts",
  "./machine/pc_devices.ts",
  "./machine/pci_devices.ts",
];

if (import.meta.main) {
  traceMark("main.ts runs (Deno runtime started, sys/libc.ts loaded)");
  const door = closeInspectorDoor();
  traceMark("SIGUSR1 locked out");
  const { prefetchWorkerModules } = await import("./sys/worker_url.ts");
  const workerModules = prefetchWorkerModules(
    WORKER_MODULES.map((m) => new URL(m, import.meta.url)),
  ).then(() => traceMark("Worker module graphs prefetched"));
  const { main } = await import("./machine/command.ts");
  traceMark("machine/command.ts and its module graph loaded");
  const code = await main(Deno.args, { door, workerModules });
  traceMark("exit");
  tracePrint();
  Deno.exit(code);
}
