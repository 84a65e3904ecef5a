// A guest that moves one virtio-pci function's BAR 0 onto another's: KVM
// refuses the second queue-doorbell ioeventfd (EEXIST). Before, that error
// escaped the vCPU thread and the VM died with exit 2; now the doorbell stays
// on the MMIO exit path, one line is logged, and the guest powers off (exit 0).
import assert from "node:assert/strict";
import { buildTestInitramfs, INIT_MARKER } from "../fixtures/initramfs.ts";
import { linuxFixture } from "./fixtures.ts";
import { runVmm } from "./_vmm_process.ts";

const M = "DENOVMM-BAR";

// Memory decode on for both functions (COMMAND = MEMORY | MASTER), then
// copy 00:01.0's 64-bit BAR 0 into 00:02.0's, then put it back.
const SCRIPT = `
M=${M}
cd /sys/bus/pci/devices || exit 1
A=0000:00:01.0
B=0000:00:02.0
bar() { od -An -tx4 -j16 -N8 $1/config | tr -d ' \\n'; }
for d in $A $B; do printf '\\006\\000' | dd of=$d/config bs=2 seek=2 count=1 conv=notrunc 2>/dev/null; done
echo "$M before a=$(bar $A) b=$(bar $B)"
dd if=$B/config bs=8 skip=2 count=1 of=/tmp/b 2>/dev/null
dd if=$A/config bs=8 skip=2 count=1 2>/dev/null | dd of=$B/config bs=8 seek=2 count=1 conv=notrunc 2>/dev/null
echo "$M moved a=$(bar $A) b=$(bar $B)"
dd if=/tmp/b of=$B/config bs=8 seek=2 count=1 conv=notrunc 2>/dev/null
echo "$M restored b=$(bar $B)"
`;

Deno.test("a guest that overlaps two BARs keeps running (ioeventfd EEXIST is survived)", async () => {
  const f = await linuxFixture();
  const initrd = await buildTestInitramfs({ script: SCRIPT });
  const dir = await Deno.makeTempDir({ prefix: "denovmm-bar-" });
  try {
    const disks: string[] = [];
    for (const n of ["a", "b"]) {
      const img = `${dir}/${n}.img`;
      await Deno.writeFile(img, new Uint8Array(1 << 20));
      disks.push("--disk", img);
    }
    const out = await runVmm([
      "--kernel",
      f.kernel,
      "--initrd",
      initrd,
      "--memory",
      "256M",
      "--append",
      "console=ttyS0 panic=-1 quiet",
      ...disks,
    ]);
    const { stdout, stderr } = out;
    const log = `${stdout.slice(-3000)}\n${stderr}`;
    const moved = stdout.match(new RegExp(`${M} moved a=(\\w+) b=(\\w+)`));
    assert.ok(moved, log);
    assert.equal(moved[1], moved[2], `B's BAR now equals A's\n${log}`);
    assert.ok(stdout.includes(`${M} restored`), log);
    assert.ok(stdout.includes(`${INIT_MARKER} script-exit=0`), log);
    assert.equal(out.code, 0, log);
    const lines = stderr.split("\n").filter((l) => /MMIO exit path/.test(l));
    assert.equal(lines.length, 1, log);
    assert.match(lines[0], /EEXIST/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
