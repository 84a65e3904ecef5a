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
 * sys/no_inspector.ts for the mechanism and the start-up window). Then the
 * command's graph loads while vCPU 0's Worker starts on its own thread
 * (machine/early_start.ts).
 *
 * @module
 */
import { closeInspectorDoor } from "./sys/no_inspector.ts";
import { traceEnabled, traceMark, tracePrint } from "./sys/start_trace.ts";

if (import.meta.main) {
  traceMark("main.ts runs (Deno runtime started, sys/libc.ts loaded)");
  // The timeline also on the exits that skip the end of this block (errors).
  globalThis.addEventListener("unload", () => {
    traceMark("exit");
    tracePrint();
  });
  const door = closeInspectorDoor();
  traceMark("SIGUSR1 locked out");
  if (traceEnabled()) {
    // Deno's clock starts once its runtime is up: the exec comes before it.
    const { processStartEpochMs } = await import("./sys/process_start.ts");
    traceMark("process started (its exec; to 10 ms)", processStartEpochMs());
  }
  // vCPU 0's Worker starts before the command's module graph loads, so its
  // isolate and modules load on their own thread meanwhile. Its small graph
  // is awaited first: imported beside the command's, it would resolve only
  // once most of that graph had been compiled on this thread.
  const early = await import("./machine/early_start.ts");
  try {
    early.startFirstVcpuEarly(Deno.args);
  } catch {
    // The builder starts it then, and reports what fails.
  }
  // Not a literal import(): Deno would read the command's whole graph before
  // this module runs. One bundle of it instead (machine/early_start.ts).
  const { main } = await early.importCommand();
  traceMark("machine/command.ts and its module graph loaded");
  Deno.exit(await main(Deno.args, { door }));
}
