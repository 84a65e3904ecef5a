// A guest that triple-faults: the VMM dumps the registers to stderr, names
// the cause, and exits 2 (and the terminal, not a TTY here, is untouched).
import assert from "node:assert/strict";
import { buildGuest } from "../../guests/guest.ts";
import { runGuest } from "./_run_guest.ts";

/** Loads an empty IDT and raises int3: #GP, then #DF, then shutdown. */
const tripleFaultSource = `
bits 16
start:
    cli
    db 0x0f, 0x01, 0x1e
    dw idtr
    db 0xcc
    hlt
idtr:
    dw 0
    dd 0
`;

Deno.test("a triple fault stops the VM with a register dump", async () => {
  const r = await runGuest(buildGuest(tripleFaultSource));
  assert.equal(r.exitCode, 2);
});

Deno.test("the VMM process reports a triple fault and exits 2", async () => {
  const repo = new URL("../..", import.meta.url).pathname;
  const dir = await Deno.makeTempDir();
  try {
    // Drive it through a tiny script so stderr is what a user would see.
    const script = `${dir}/crash.ts`;
    await Deno.writeTextFile(
      script,
      `import { runGuest } from "${repo}tests/kvm/_run_guest.ts";
import { buildGuest } from "${repo}guests/guest.ts";
const g = buildGuest(${JSON.stringify(tripleFaultSource)});
const r = await runGuest(g);
Deno.exit(r.exitCode);`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-check", "-A", script],
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.match(stderr, /vcpu-0: guest stopped: triple fault \(KVM_EXIT_SHUTDOWN\)/);
    assert.match(stderr, /RIP=[0-9a-f]{16}/);
    assert.match(stderr, /CR0=/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
