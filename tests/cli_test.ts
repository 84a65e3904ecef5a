// The command line's errors, on real files and a real (or hidden) /dev/kvm:
// each bad input ends with one line naming the problem and exit code 1.
// No KVM is needed: every case fails before a guest would run.
import assert from "node:assert/strict";
import { assertOneLine, runCli } from "./_cli_process.ts";
import { resetLoopGuest } from "../guests/reset_loop.ts";

const isRoot = Deno.uid() === 0;

Deno.test("bad --memory and --cpus", async () => {
  assertOneLine(await runCli(["--memory", "12Q"]), /Invalid --memory '12Q'/);
  assertOneLine(await runCli(["--memory", "8M"]), /at least 16M/);
  assertOneLine(await runCli(["--cpus", "0"]), /Invalid --cpus '0'/);
  assertOneLine(await runCli(["--cpus", "lots"]), /Invalid --cpus 'lots'/);
  assertOneLine(await runCli(["--bogus"]), /Unknown option '--bogus'/);
});

Deno.test("missing, unreadable and non-kernel files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-cli-" });
  try {
    assertOneLine(
      await runCli(["--kernel", `${dir}/nope`]),
      /cannot read kernel '.*nope': No such file/,
    );
    assertOneLine(await runCli(["--kernel", dir]), /it is a directory/);
    await Deno.writeTextFile(`${dir}/text`, "this is not a kernel\n".repeat(100));
    assertOneLine(await runCli(["--kernel", `${dir}/text`]), /Not a Linux bzImage/);
    await Deno.writeFile(`${dir}/short`, new Uint8Array(100));
    assertOneLine(await runCli(["--kernel", `${dir}/short`]), /text|truncated|short|small/i);
    if (isRoot) {
      // Root reads anything; drop to nobody for the permission case.
      await Deno.writeFile(`${dir}/secret`, new Uint8Array(4096));
      await Deno.chmod(`${dir}/secret`, 0o600);
      await Deno.chmod(dir, 0o755);
      assertOneLine(
        await runCli(["--kernel", `${dir}/secret`], ["runuser", "-u", "nobody", "--"]),
        /cannot read kernel '.*secret': Permission denied/,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "no /dev/kvm says how to get KVM",
  ignore: !isRoot,
  fn: async () => {
    // A private mount namespace whose /dev has no kvm node.
    const r = await runCli([], [
      "unshare",
      "-m",
      "sh",
      "-c",
      'mount -t tmpfs none /dev && touch /dev/null && exec "$0" "$@"',
    ]);
    assertOneLine(r, /\/dev\/kvm does not exist: KVM is not available here \(enable VT-x\/AMD-V/);
  },
});

Deno.test({
  name: "no permission on /dev/kvm says how to get it",
  ignore: !isRoot,
  fn: async () => {
    let st: Deno.FileInfo;
    try {
      st = Deno.statSync("/dev/kvm");
    } catch {
      return; // Covered by the test above on hosts without KVM.
    }
    if ((st.mode! & 0o006) !== 0) return; // world-accessible: nothing to deny
    assertOneLine(
      await runCli([], ["runuser", "-u", "nobody", "--"]),
      /no permission to open \/dev\/kvm: add your user to the kvm group/,
    );
  },
});

Deno.test("a FIFO or device as --kernel/--initrd is refused before it can block", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-cli-" });
  try {
    const fifo = `${dir}/fifo`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(mk.code, 0);
    // open(2) of a FIFO with no writer blocks; a time limit turns that into a failure.
    assertOneLine(
      await runCli(["--kernel", fifo], ["timeout", "20"]),
      /kernel '.*fifo': it is a FIFO/,
    );
    assertOneLine(
      await runCli(["--kernel", "/dev/zero"], ["timeout", "20"]),
      /kernel '\/dev\/zero': it is a character device/,
    );
    // A valid kernel (a PVH ELF), so the initrd is looked at too.
    await Deno.writeFile(`${dir}/k`, resetLoopGuest(32 << 20));
    assertOneLine(
      await runCli(["--kernel", `${dir}/k`, "--initrd", fifo], ["timeout", "20"]),
      /initrd '.*fifo': it is a FIFO/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("more --disk than PCI bus 0 has slots is one line, not a RangeError", async () => {
  const disks = Array.from({ length: 33 }, (_, i) => ["--disk", `/nonexistent/${i}.img`]).flat();
  assertOneLine(
    // virtio-rng (on by default) would be the 34th function.
    await runCli(["--kernel", "/nonexistent/bzImage", "--rng", "off", ...disks]),
    /Too many PCI devices: 33 asked for, bus 0 has room for 31/,
  );
});

Deno.test("--help and --version", async () => {
  const h = await runCli(["--help"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /--kernel FILE/);
  assert.match(h.stdout, /--memory SIZE/);
  const v = await runCli(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^denovmm \d+\.\d+\.\d+/);
});
