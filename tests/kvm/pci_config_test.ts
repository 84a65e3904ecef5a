// PCI configuration reads through 0xcf8/0xcfc, as users run the VMM: the
// guest alternates between two devices 5,000 times, so a read that used a
// stale CONFIG_ADDRESS (where the writes to it queue in KVM's coalesced ring
// instead of exiting) would see the wrong device; then a reset written to
// 0xcf9, in the same coalesced dword, must win over the triple fault that
// follows it (exit status 10, "reboot", not 2, "crash").
import assert from "node:assert/strict";
import {
  PCI_CONFIG_LOOP_FAIL,
  PCI_CONFIG_LOOP_PASS,
  pciConfigLoopGuest,
} from "../../guests/pci_config_loop.ts";
import { EXIT_CODE_REBOOT } from "../../vcpu/exit_codes.ts";
import { runVmm } from "./_vmm_process.ts";

Deno.test("config reads see the address just written; a reset at 0xcf9 beats the crash after it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-pci-config-" });
  try {
    const kernel = `${dir}/pci_config_loop.elf`;
    await Deno.writeFile(kernel, pciConfigLoopGuest(5000));
    const out = await runVmm(["--kernel", kernel, "--memory", "32M", "--no-reboot"], {
      timeoutMs: 120_000,
    });
    const log = `stdout: ${out.stdout.slice(-500)}\nstderr: ${out.stderr.slice(-2000)}`;
    assert.ok(!out.stdout.includes(`${PCI_CONFIG_LOOP_FAIL}\n`), log);
    assert.ok(out.stdout.includes(`${PCI_CONFIG_LOOP_PASS}\n`), log);
    assert.equal(out.code, EXIT_CODE_REBOOT, log);
    assert.ok(!/crash|triple|KVM_EXIT_SHUTDOWN/i.test(out.stderr), log);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
