// The operator's flags through the real command line (`deno run --allow-ffi
// main.ts`), no KVM needed: every case fails before a guest would run, with
// one line on stderr, exit 1, and nothing left behind.
import assert from "node:assert/strict";
import { assertOneLine, runCli } from "./_cli_process.ts";
import { linuxFixture } from "./kvm/fixtures.ts";

Deno.test("negative numbers, repeats and QEMU spellings: one line each", async () => {
  assertOneLine(await runCli(["--cpus", "-1"]), /Invalid --cpus '-1'/);
  assertOneLine(await runCli(["--memory", "-5"]), /Invalid --memory '-5'/);
  assertOneLine(await runCli(["-smp", "-2"]), /Invalid -smp '-2'/);
  assertOneLine(
    await runCli(["-m", "1G", "--memory", "2G"]),
    /--memory given twice \(also as -m\)/,
  );
  assertOneLine(
    await runCli(["-smp", "2", "-kernel", "/nonexistent/bzImage"]),
    /cannot read kernel/,
  );
  // -daemonize: the detached copy's set-up error is the command's error.
  assertOneLine(
    await runCli(["-daemonize", "-kernel", "/nonexistent/bzImage"]),
    /cannot read kernel/,
  );
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /by default, as\s+QEMU does, a guest reboot restarts/);
  assert.match(help.stdout, /--qmp unix:PATH,server,wait=off/);
});

Deno.test("placement and QMP mistakes stop before the guest runs, leaving nothing", async () => {
  const f = await linuxFixture();
  const dir = Deno.makeTempDirSync();
  try {
    const base = ["-kernel", f.kernel, "-initrd", f.initrd, "-smp", "2"];
    assertOneLine(
      await runCli([...base, "--vcpu-affinity", "5=0"]),
      /vcpu-5 named, but the machine has 2/,
    );
    const cpus = navigator.hardwareConcurrency;
    assertOneLine(
      await runCli([...base, "--affinity", `aio=${cpus + 2}`]),
      new RegExp(`CPU ${cpus + 2} is not available`),
    );
    assertOneLine(await runCli([...base, "--cgroup", `${dir}/nope`]), /not a cgroup v2 directory/);
    Deno.writeTextFileSync(`${dir}/file`, "keep");
    assertOneLine(
      await runCli([
        ...base,
        "--pidfile",
        `${dir}/vm.pid`,
        "-qmp",
        `unix:${dir}/file,server,wait=off`,
      ]),
      /--qmp: '.*file' exists and is not a socket/,
    );
    assert.equal(Deno.readTextFileSync(`${dir}/file`), "keep");
    assert.throws(() => Deno.statSync(`${dir}/vm.pid`), Deno.errors.NotFound, "no pid file left");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
