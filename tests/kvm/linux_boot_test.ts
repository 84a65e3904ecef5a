// Debian's stock kernel boots under `deno run --allow-ffi main.ts` to the
// test initramfs's /init, which reports uname -r and nproc over the serial
// console, then powers off (exit 0) or reboots (exit 10 with --no-reboot). A line typed on
// the host's stdin reaches the guest's shell through the 16550.
import assert from "node:assert/strict";
import { INIT_MARKER } from "../fixtures/initramfs.ts";
import { echoInitramfs, linuxFixture } from "./fixtures.ts";
import { runLog, runVmm, typeOnce } from "./_vmm_process.ts";
import { createVm, VmConfigError } from "../../mod.ts";
import { hostCpuBrand } from "../../sys/host_cpuid.ts";

/** Boots the fixture kernel (bzImage, or vmlinux with `elf`) with the test initramfs. */
async function bootFixture(opts: { elf?: boolean; append?: string; extra?: string[] } = {}) {
  const f = await linuxFixture();
  return await runVmm([
    "--kernel",
    opts.elf ? f.vmlinux : f.kernel,
    "--initrd",
    f.initrd,
    "--append",
    `console=ttyS0 panic=-1 quiet ${opts.append ?? ""}`.trim(),
    ...(opts.extra ?? []),
  ]);
}

Deno.test("stock Debian bzImage boots to /init with 2 vCPUs, reads the console, powers off", async () => {
  const f = await linuxFixture();
  const initrd = await echoInitramfs();
  const r = await runVmm(
    [
      "--kernel",
      f.kernel,
      "--initrd",
      initrd,
      "--append",
      "console=ttyS0 panic=-1 quiet",
      "--cpus",
      "2",
      "--memory",
      "512M",
    ],
    { stdin: true, onStdout: typeOnce(`${INIT_MARKER} uname=`, "ping from the host\n") },
  );
  const facts = r.stdout.match(new RegExp(`${INIT_MARKER} uname=(\\S+) nproc=(\\d+)`));
  assert.ok(facts, `no /init report in:\n${r.stdout.slice(-3000)}\n${r.stderr}`);
  assert.match(facts[1], /^6\.1\.0-\d+-amd64$/);
  assert.equal(facts[2], "2");
  assert.ok(r.stdout.includes("DENOVMM-ECHO [ping from the host]"), r.stdout.slice(-2000));
  // The host's brand string (QEMU's -cpu host passes it too; KVM's list has it zeroed),
  // trimmed as Linux prints it.
  const brand = hostCpuBrand()?.trim();
  if (brand) assert.ok(r.stdout.includes(`DENOVMM-CPU [${brand}]`), r.stdout.slice(-2000));
  assert.ok(r.stdout.includes(`${INIT_MARKER} action=poweroff`));
  assert.equal(r.code, 0, r.stderr);
  console.log(`boot to power-off: ${r.seconds.toFixed(1)} s`);
});

Deno.test("with --no-reboot a guest reboot ends the VMM with exit code 10", async () => {
  // (Without it a reboot restarts the machine, as QEMU does.)
  const r = await bootFixture({ append: "denovmm.action=reboot", extra: ["--no-reboot"] });
  assert.ok(r.stdout.includes(`${INIT_MARKER} action=reboot`), r.stdout.slice(-3000));
  assert.equal(r.code, 10, r.stderr);
});

Deno.test("the same kernel as a vmlinux ELF boots through its PVH entry", async () => {
  const r = await bootFixture({ elf: true });
  assert.ok(r.stdout.includes(`${INIT_MARKER} uname=`), r.stdout.slice(-3000) + r.stderr);
  assert.equal(r.code, 0, r.stderr);
});

Deno.test("a kernel too big for the guest's RAM is one line and exit 1, from the CLI and the library", async () => {
  const f = await linuxFixture();
  // Found while loading it, after KVM and the vCPU Workers are up: all of it is taken apart.
  const r = await runVmm(["--kernel", f.kernel, "--initrd", f.initrd, "--memory", "16M"]);
  assert.equal(r.code, 1, runLog(r));
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^denovmm: .*vmlinuz.*: Kernel too big for guest RAM/);
  await assert.rejects(
    createVm({ kernel: f.kernel, memory: "16M" }),
    (e: Error) => e instanceof VmConfigError && /too big for guest RAM/.test(e.message),
  );
});
