// Starts like main.ts (the SIGUSR1 lock first, then the rest of the program)
// unless Deno.args[0] is "unlocked", then stays alive for Deno.args[1] ms:
// tests/signals_test.ts signals it meanwhile. With "late", the lock goes in
// only after Deno's 500 ms grace period (a host too slow to beat it). Prints
// "image" when an image starts, and when the lock went in (ms since the
// runtime started) with what closeInspectorDoor() reported.
import { closeInspectorDoor } from "../../sys/no_inspector.ts";

console.error("image");
if (Deno.args[0] === "late") await new Promise((r) => setTimeout(r, 700));
if (Deno.args[0] !== "unlocked") {
  const s = closeInspectorDoor();
  console.error(`lock at ${performance.now().toFixed(1)} ms: ${JSON.stringify(s)}`);
}
await import("../../machine/command.ts");
await new Promise((r) => setTimeout(r, Number(Deno.args[1] ?? 1500)));
console.log("alive");
