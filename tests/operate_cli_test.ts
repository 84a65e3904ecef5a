// The operator's flags through the real command line (`deno run --allow-ffi
// main.ts`), no KVM needed: every case fails before a guest would run, with
// one line on stderr, exit 1, and nothing left behind.
import assert from "node:assert/strict";
import { linuxFixture } from "./kvm/fixtures.ts";

const repo = new URL("..", import.meta.url).pathname;

async function vmm(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", `${repo}main.ts`, ...args],
    cwd: repo,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function oneLine(r: { code: number; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^denovmm: /);
  assert.match(lines[0], re);
}

Deno.test("negative numbers, repeats and QEMU spellings: one line each", async () => {
  oneLine(await vmm(["--cpus", "-1"]), /Invalid --cpus '-1'/);
  oneLine(await vmm(["--memory", "-5"]), /Invalid --memory '-5'/);
  oneLine(await vmm(["-smp", "-2"]), /Invalid -smp '-2'/);
  oneLine(await vmm(["-m", "1G", "--memory", "2G"]), /--memory given twice \(also as -m\)/);
  oneLine(await vmm(["-smp", "2", "-kernel", "/nonexistent/bzImage"]), /cannot read kernel/);
  // -daemonize: the detached copy's set-up error is the command's error.
  oneLine(await vmm(["-daemonize", "-kernel", "/nonexistent/bzImage"]), /cannot read kernel/);
  const help = await vmm(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /by default, as\s+QEMU does, a guest reboot restarts/);
  assert.match(help.stdout, /--qmp unix:PATH,server,wait=off/);
});

Deno.test("placement and QMP mistakes stop before the guest runs, leaving nothing", async () => {
  const f = await linuxFixture();
  const dir = Deno.makeTempDirSync();
  try {
    const base = ["-kernel", f.kernel, "-initrd", f.initrd, "-smp", "2"];
    oneLine(await vmm([...base, "--vcpu-affinity", "5=0"]), /vcpu-5 named, but the machine has 2/);
    const cpus = navigator.hardwareConcurrency;
    oneLine(
      await vmm([...base, "--affinity", `aio=${cpus + 2}`]),
      new RegExp(`CPU ${cpus + 2} is not available`),
    );
    oneLine(await vmm([...base, "--cgroup", `${dir}/nope`]), /not a cgroup v2 directory/);
    Deno.writeTextFileSync(`${dir}/file`, "keep");
    oneLine(
      await vmm([
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
