// The main thread controls vCPU Workers that sit inside KVM_RUN: pause
// (kick with SIGUSR2 + immediate_exit), resume, and stop, while the guest
// spins without ever exiting on its own. Thread names are the roles.
import assert from "node:assert/strict";
import { buildGuest } from "../../guests/guest.ts";
import { Machine, setRealModeEntry } from "../../machine/machine.ts";
import { VcpuRunState, VmState } from "../../vcpu/vm_control.ts";

/** Increments the dword at 0x500 forever; never exits to the VMM. */
const SPINNER = buildGuest(`
bits 16
start:
    cli
.again:
    inc dword [0x500]
    jmp .again
`);

function threadNames(): string[] {
  const names: string[] = [];
  for (const t of Deno.readDirSync("/proc/self/task")) {
    names.push(Deno.readTextFileSync(`/proc/self/task/${t.name}/comm`).trim());
  }
  return names;
}

Deno.test("pause, resume and stop vCPUs spinning in the guest", async () => {
  const m = Machine.create({ memoryBytes: 1 << 20, cpus: 2 });
  try {
    m.memory.write(SPINNER.loadAddr, SPINNER.code);
    await m.setup((v, i) => setRealModeEntry(v, i, SPINNER.entry));
    const names = threadNames();
    assert.ok(names.includes("vcpu-0") && names.includes("vcpu-1"), names.join(","));
    const running = m.run();
    const count = () => m.memory.readU32(0x500);
    const t0 = performance.now();
    while (count() < 1000 && performance.now() - t0 < 20_000) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(count() >= 1000, "the guest never ran");

    await Promise.all(m.vcpus.map((v) => v.pause()));
    for (const v of m.vcpus) assert.equal(v.state, VcpuRunState.Paused);
    const frozen = count();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(count(), frozen, "a paused vCPU kept running");

    for (const v of m.vcpus) v.resume();
    const t1 = performance.now();
    while (count() === frozen && performance.now() - t1 < 20_000) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(count() !== frozen, "the guest did not resume");

    m.stop(42);
    const exit = await running;
    assert.equal(exit.state, VmState.Stopped);
    assert.equal(exit.exitCode, 42);
    for (const v of m.vcpus) assert.equal(v.state, VcpuRunState.Stopped);
  } finally {
    await m.close();
  }
});
