// vm.powerdown() is the ACPI power button: PWRBTN_STS in the PM1 event block
// and the SCI. Debian's stock kernel with its button driver turns it into
// KEY_POWER, busybox acpid runs its action, and the guest powers off.
import assert from "node:assert/strict";
import { createVm, type VmEventType } from "../../mod.ts";
import { ACPID_READY, acpidInitramfs, linuxFixture, POWER_BUTTON_SEEN } from "./fixtures.ts";

Deno.test("powerdown() reaches acpid in the guest, which powers off", async () => {
  const f = await linuxFixture();
  const initrd = await acpidInitramfs();
  await using vm = await createVm({
    kernel: f.kernel,
    initrd,
    append: "console=ttyS0 panic=-1 quiet",
    memory: "256M",
  });
  const events: VmEventType[] = [];
  vm.on("powerdown", (t) => events.push(t));
  vm.on("poweroff", (t) => events.push(t));
  await vm.start();
  const seen = async (what: string, timeoutMs: number) => {
    try {
      await vm.serial.waitFor(what, { timeoutMs });
    } catch (e) {
      throw new Error(`${(e as Error).message}; console:\n${vm.serial.text.slice(-3000)}`);
    }
  };
  await seen(ACPID_READY, 180_000);
  assert.equal(vm.powerdown(), true, "the guest enabled the power button event");
  await seen(POWER_BUTTON_SEEN, 120_000);
  const end = await vm.wait();
  assert.equal(end.reason, "poweroff", vm.serial.text.slice(-2000));
  assert.equal(end.exitCode, 0);
  assert.deepEqual(events, ["powerdown", "poweroff"]);
});
