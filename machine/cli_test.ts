import assert from "node:assert/strict";
import { parseCli, UsageError } from "./cli.ts";

Deno.test("parseCli: defaults and QEMU-style values", () => {
  const d = parseCli([]);
  assert.equal(d.cpus, 1);
  assert.equal(d.memoryBytes, 256 << 20);
  assert.equal(d.kernel, undefined);
  const o = parseCli([
    "--kernel",
    "bzImage",
    "--initrd",
    "initrd.img",
    "--append",
    "console=ttyS0 quiet",
    "--cpus",
    "2",
    "--memory",
    "1G",
    "--disk",
    "a.img",
    "--disk",
    "b.img,ro",
  ]);
  assert.equal(o.kernel, "bzImage");
  assert.equal(o.initrd, "initrd.img");
  assert.equal(o.append, "console=ttyS0 quiet");
  assert.equal(o.cpus, 2);
  assert.equal(o.memoryBytes, 1 << 30);
  assert.deepEqual(o.disks, ["a.img", "b.img,ro"]);
  assert.equal(parseCli(["--memory", "512"]).memoryBytes, 512 << 20);
});

Deno.test("parseCli: bad values give one clear line", () => {
  const cases: [string[], RegExp][] = [
    [["--cpus", "0"], /Invalid --cpus '0'/],
    [["--cpus", "two"], /Invalid --cpus 'two'/],
    [["--cpus", "1.5"], /Invalid --cpus/],
    [["--cpus", "999"], /from 1 to 254/],
    [["--memory", "lots"], /Invalid --memory 'lots': use a size like 256M/],
    [["--memory", "1M"], /at least 16M/],
    [["--memory", "100000G"], /at most 1T/],
    [["--memory", "1000001k"], /4K pages/],
    [["--frobnicate"], /Unknown option '--frobnicate'/],
    [["--kernel"], /--kernel/],
    [["--initrd", "x"], /--initrd needs --kernel/],
  ];
  for (const [args, re] of cases) {
    assert.throws(() => parseCli(args), (e: unknown) => {
      assert.ok(e instanceof UsageError, `${args}: ${e}`);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });
  }
});

Deno.test("parseCli: QEMU's spellings give the same options as the long flags", () => {
  const q = parseCli([
    "-kernel",
    "bzImage",
    "-initrd",
    "initrd.img",
    "-append",
    "console=ttyS0 quiet",
    "-smp",
    "2",
    "-m",
    "1G",
    "-drive",
    "file=a.img,if=virtio,format=raw",
    "-drive",
    "file=b.img,if=virtio,readonly=on,cache=none,aio=io_uring",
    "-nographic",
    "-no-reboot",
    "-name",
    "guest=web,process=vm-web",
    "-pidfile",
    "/run/vm.pid",
    "-daemonize",
    "-qmp",
    "unix:/run/vm.qmp,server,wait=off",
    "-S",
  ]);
  const l = parseCli([
    "--kernel",
    "bzImage",
    "--initrd",
    "initrd.img",
    "--append",
    "console=ttyS0 quiet",
    "--cpus",
    "2",
    "--memory",
    "1G",
    "--disk",
    "a.img",
    "--disk",
    "b.img,ro,cache=none,aio=io_uring",
    "--no-reboot",
    "--name",
    "guest=web,process=vm-web",
    "--pidfile",
    "/run/vm.pid",
    "--daemonize",
    "--qmp",
    "/run/vm.qmp",
    "-S",
  ]);
  assert.deepEqual(q, l);
  assert.equal(q.cpus, 2);
  assert.equal(q.reboot, false);
  assert.equal(q.qmp, "/run/vm.qmp");
  assert.equal(q.startPaused, true);
  assert.deepEqual(q.name, { guest: "web", process: "vm-web" });
  assert.equal(parseCli(["-smp", "cpus=4,maxcpus=4"]).cpus, 4);
  assert.equal(parseCli(["-smp", "4,sockets=2,cores=2"]).cpus, 4);
  assert.equal(parseCli(["-m", "size=512"]).memoryBytes, 512 << 20);
  assert.equal(parseCli(["--smp=3", "--memory=1G"]).cpus, 3);
});

Deno.test("parseCli: a guest reboot restarts by default, as in QEMU", () => {
  assert.equal(parseCli([]).reboot, true);
  assert.equal(parseCli(["--reboot"]).reboot, true);
  assert.equal(parseCli(["--no-reboot"]).reboot, false);
  assert.throws(() => parseCli(["--reboot", "--no-reboot"]), /contradict/);
});

Deno.test("parseCli: repeats, negatives and QEMU sub-option mistakes are one line", () => {
  const cases: [string[], RegExp][] = [
    [["--cpus", "-1"], /^Invalid --cpus '-1': use a whole number from 1 to 254$/],
    [["-smp", "-2"], /^Invalid -smp '-2'/],
    [["--memory", "-5"], /^Invalid --memory '-5': use a size like 256M/],
    [["-m", "-1G"], /^Invalid -m '-1G'/],
    [["--cpus", "2", "--cpus", "3"], /^--cpus given twice$/],
    [["-smp", "2", "--cpus", "3"], /^--cpus given twice \(also as -smp\)$/],
    [["-m", "1G", "-m", "2G"], /^-m given twice$/],
    [["--kernel", "a", "-kernel", "b"], /given twice/],
    [["-S", "-S"], /-S given twice/],
    [["-smp", "2,sockets=3"], /sockets\*cores\*threads is 3/],
    [["-smp", "cpus=2,maxcpus=4"], /no CPU hotplug/],
    [["-smp", "2,dies=1"], /unknown sub-option 'dies'/],
    [["-m", "1G,slots=2"], /no memory hotplug/],
    [["-kernel", "k", "-drive", "file=a.img"], /needs if=virtio/],
    [["-kernel", "k", "-drive", "file=a.img,if=ide"], /only if=virtio/],
    [["-kernel", "k", "-drive", "file=a.img,if=virtio,format=qcow2"], /only raw/],
    [["-kernel", "k", "-drive", "if=virtio"], /needs file=PATH/],
    [["-kernel", "k", "-drive", "file=a.img,if=virtio,cache=unsafe"], /cache=unsafe/],
    [["-qmp", "tcp:localhost:4444,server,wait=off"], /only unix:PATH/],
    [["-qmp", "unix:/x.sock,server"], /wait=off/],
    [["-qmp", "unix:/x.sock,wait=off"], /add ',server'/],
    [["-S"], /-S needs --qmp/],
    [["--stats-interval", "0"], /Invalid --stats-interval '0'/],
    [["--stats-interval", "-1"], /Invalid --stats-interval '-1'/],
    [["--vcpu-affinity", "0=x"], /Invalid --vcpu-affinity 0=x/],
    [["--sched", "vcpu=fifo:200"], /1\.\.99/],
    [["-nographic=1"], /Unknown option '-nographic=1'/],
    [["--no-reboot=yes"], /takes no value/],
    [["bzImage"], /Unexpected argument 'bzImage'/],
    [["--memory"], /--memory needs a value/],
  ];
  for (const [args, re] of cases) {
    assert.throws(() => parseCli(args), (e: unknown) => {
      assert.ok(e instanceof UsageError, `${args}: ${e}`);
      assert.match(e.message, re, args.join(" "));
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });
  }
});
