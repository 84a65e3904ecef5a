// The user's command with only --allow-ffi: the demo guest prints its banner
// over the 16550 UART and powers off through ACPI, so the VMM exits 0.
import assert from "node:assert/strict";
import { DEMO_BANNER } from "../../guests/demo.ts";
import { runVmm } from "./_vmm_process.ts";

Deno.test("deno run --allow-ffi main.ts boots the demo guest and exits 0", async () => {
  const out = await runVmm([]);
  assert.equal(out.code, 0, out.stderr);
  assert.ok(out.stdout.includes(DEMO_BANNER), out.stdout);
});
