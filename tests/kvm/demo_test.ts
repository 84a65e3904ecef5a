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

Deno.test("-serial file:PATH writes the console to the file (truncated first), not to stdout", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-serial-" });
  try {
    const log = `${dir}/console.log`;
    await Deno.writeTextFile(log, "old contents, longer than what replaces them ".repeat(100));
    const out = await runVmm(["-serial", `file:${log}`]);
    assert.equal(out.code, 0, out.stderr);
    const text = await Deno.readTextFile(log);
    assert.ok(text.includes(DEMO_BANNER), text);
    assert.ok(!text.includes("old contents"), "truncated");
    assert.ok(!out.stdout.includes(DEMO_BANNER), out.stdout);
    // A file that cannot be written is one line, before the guest runs.
    const bad = await runVmm(["-serial", `file:${dir}/missing/console.log`]);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(
      bad.stderr.trim(),
      /^denovmm: Cannot write the serial output to .*console\.log: No such file or directory$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
