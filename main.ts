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
 * @module
 */
import { closeInspectorDoor } from "./sys/no_inspector.ts";
import { traceMark, tracePrint } from "./sys/start_trace.ts";

if (import.meta.main) {
  traceMark("main.ts runs (Deno runtime started, sys/libc.ts loaded)");
  const door = closeInspectorDoor();
  traceMark("SIGUSR1 locked out");
  const { main } = await import("./machine/command.ts");
  traceMark("machine/command.ts and its module graph loaded");
  const code = await main(Deno.args, { door });
  traceMark("exit");
  tracePrint();
  Deno.exit(code);
}
