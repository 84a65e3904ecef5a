// The user's command with only --allow-ffi: the demo guest prints its banner
// over the 16550 UART and powers off through ACPI, so the VMM exits 0.
import assert from "node:assert/strict";
import { DEMO_BANNER } from "../../guests/demo.ts";

Deno.test("deno run --allow-ffi main.ts boots the demo guest and exits 0", async () => {
  const repo = new URL("../..", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-check", "--allow-ffi", "main.ts"],
    cwd: repo,
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.ok(stdout.includes(DEMO_BANNER), stdout);
});
