/**
 * The denovmm command line:
 *
 *   deno run --allow-ffi main.ts --kernel bzImage [--initrd F] [--append S]
 *     [--cpus N] [--memory SIZE] [--disk SPEC]...
 *
 * With no --kernel it boots the bundled demo guest. The only reader of
 * Deno.args; the command itself is machine/command.ts.
 *
 * This module imports nothing but sys/no_inspector.ts (and its libc.ts), so
 * SIGUSR1 is ignored and locked before the rest of the program is even
 * loaded: Deno would otherwise open its V8 inspector on that signal (see
 * sys/no_inspector.ts for the mechanism and the start-up window).
 *
 * @module
 */
import { closeInspectorDoor } from "./sys/no_inspector.ts";

if (import.meta.main) {
  const door = closeInspectorDoor();
  const { main } = await import("./machine/command.ts");
  Deno.exit(await main(Deno.args, { door }));
}
