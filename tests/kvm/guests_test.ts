// The project's own guests on real KVM: serial output, long mode, MMIO round
// trip, HLT, two vCPUs running at once, and debug-exit codes.
import assert from "node:assert/strict";
import {
  HALT_GUEST_EXIT_CODE,
  HALT_GUEST_OUTPUT,
  haltGuest,
  LONG_MODE_HELLO_EXIT_CODE,
  LONG_MODE_HELLO_OUTPUT,
  longModeHello,
  MMIO_OK_EXIT_CODE,
  MMIO_OK_OUTPUT,
  mmioRoundTrip,
  REAL_MODE_HELLO_EXIT_CODE,
  REAL_MODE_HELLO_OUTPUT,
  realModeHello,
  TWO_VCPUS_LINES,
  TWO_VCPUS_OK_EXIT_CODE,
  twoVcpus,
} from "../../guests/mod.ts";
import { VmState } from "../../vcpu/vm_control.ts";
import { runGuest } from "./_run_guest.ts";

Deno.test("real-mode guest prints over COM1 and leaves through debug-exit", async () => {
  const r = await runGuest(realModeHello());
  assert.deepEqual(r.errors, []);
  assert.equal(r.output, REAL_MODE_HELLO_OUTPUT);
  assert.equal(r.state, VmState.DebugExit);
  assert.equal(r.exitCode, REAL_MODE_HELLO_EXIT_CODE);
});

Deno.test("long-mode guest switches to 64-bit and prints a 64-bit value", async () => {
  const r = await runGuest(longModeHello());
  assert.deepEqual(r.errors, []);
  assert.equal(r.output, LONG_MODE_HELLO_OUTPUT);
  assert.equal(r.exitCode, LONG_MODE_HELLO_EXIT_CODE);
});

Deno.test("MMIO round trip through the echo device", async () => {
  const r = await runGuest(mmioRoundTrip());
  assert.equal(r.output, MMIO_OK_OUTPUT);
  assert.equal(r.exitCode, MMIO_OK_EXIT_CODE);
});

Deno.test("HLT exits to the VMM and the guest resumes", async () => {
  const r = await runGuest(haltGuest());
  assert.equal(r.output, HALT_GUEST_OUTPUT);
  assert.equal(r.exitCode, HALT_GUEST_EXIT_CODE);
});

Deno.test("two vCPUs run concurrently in one VM", async () => {
  const r = await runGuest(twoVcpus(), { cpus: 2 });
  assert.deepEqual(r.errors, []);
  for (const line of TWO_VCPUS_LINES) assert.ok(r.output.includes(line), r.output);
  assert.equal(r.exitCode, TWO_VCPUS_OK_EXIT_CODE, r.output);
});
