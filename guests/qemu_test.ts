// Runs every guest on QEMU's TCG emulator (an x86 independent of KVM and of our assembler)
// through the firmware in _qemu.ts. Skipped when qemu-system-x86_64 is not installed.
import assert from "node:assert/strict";
import { hasQemu, runInQemu } from "./_qemu.ts";
import {
  HALT_GUEST_BEFORE,
  HALT_GUEST_EXIT_CODE,
  HALT_GUEST_OUTPUT,
  haltGuest,
  LONG_MODE_HELLO_EXIT_CODE,
  LONG_MODE_HELLO_OUTPUT,
  longModeHello,
  MMIO_BAD_EXIT_CODE,
  MMIO_BAD_OUTPUT,
  mmioRoundTrip,
  PIO_LOOP_EXIT_CODE,
  pioLoop,
  REAL_MODE_HELLO_EXIT_CODE,
  REAL_MODE_HELLO_OUTPUT,
  realModeHello,
  TWO_VCPUS_LINES,
  TWO_VCPUS_NOT_CONCURRENT_EXIT_CODE,
  TWO_VCPUS_NOT_CONCURRENT_OUTPUT,
  TWO_VCPUS_OK_EXIT_CODE,
  twoVcpus,
} from "./mod.ts";

const ignore = !hasQemu();

Deno.test({ name: "qemu: realModeHello prints and exits 33", ignore }, async () => {
  const r = await runInQemu(realModeHello());
  assert.deepEqual(r, { code: REAL_MODE_HELLO_EXIT_CODE, serial: REAL_MODE_HELLO_OUTPUT });
});

Deno.test({ name: "qemu: longModeHello reaches long mode and exits 35", ignore }, async () => {
  const r = await runInQemu(longModeHello());
  assert.deepEqual(r, { code: LONG_MODE_HELLO_EXIT_CODE, serial: LONG_MODE_HELLO_OUTPUT });
});

Deno.test({ name: "qemu: mmioRoundTrip detects a missing echo device", ignore }, async () => {
  // QEMU has no echo register at 0xd0000000, so the read-back must be rejected.
  const r = await runInQemu(mmioRoundTrip());
  assert.deepEqual(r, { code: MMIO_BAD_EXIT_CODE, serial: MMIO_BAD_OUTPUT });
});

Deno.test({ name: "qemu: haltGuest halts until woken, then exits 41", ignore }, async () => {
  const stuck = await runInQemu(haltGuest(), { timeoutMs: 1500 });
  assert.deepEqual(stuck, { code: -1, serial: HALT_GUEST_BEFORE });
  const r = await runInQemu(haltGuest(), { nmiAfter: HALT_GUEST_BEFORE });
  assert.deepEqual(r, { code: HALT_GUEST_EXIT_CODE, serial: HALT_GUEST_OUTPUT });
});

Deno.test({ name: "qemu: twoVcpus passes on two concurrent CPUs", ignore }, async () => {
  const r = await runInQemu(twoVcpus(), { cpus: 2 });
  assert.equal(r.code, TWO_VCPUS_OK_EXIT_CODE);
  assert.equal(r.serial.length, TWO_VCPUS_LINES.join("").length);
  for (const line of TWO_VCPUS_LINES) assert.ok(r.serial.includes(line), r.serial);
});

Deno.test({ name: "qemu: twoVcpus gives up on a single CPU", ignore }, async () => {
  const r = await runInQemu(twoVcpus({ timeoutTicks: 2 ** 30 }), { cpus: 1 });
  assert.deepEqual(r, {
    code: TWO_VCPUS_NOT_CONCURRENT_EXIT_CODE,
    serial: TWO_VCPUS_NOT_CONCURRENT_OUTPUT,
  });
});

Deno.test({ name: "qemu: pioLoop runs its loop and exits 47", ignore }, async () => {
  const r = await runInQemu(pioLoop(100_000));
  assert.deepEqual(r, { code: PIO_LOOP_EXIT_CODE, serial: "" });
});
