import assert from "node:assert/strict";
import { parseCli, UsageError } from "./cli.ts";
import { vmConfigFromCli } from "./cli_config.ts";
import { parseDiskOption } from "../devices/virtio/disk_file.ts";

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

Deno.test("parseCli: a QEMU command line's habitual flags ask for what denovmm does and change nothing", () => {
  const plain = parseCli(["-kernel", "bzImage", "-m", "1G", "-smp", "2", "-nographic"]);
  const qemu = parseCli([
    "-enable-kvm",
    "-accel",
    "kvm,kernel-irqchip=on",
    "-accel",
    "tcg", // QEMU's fallback list: the first one runs
    "-machine",
    "pc-i440fx-8.2,accel=kvm:tcg,usb=off,vmport=off,smm=off,hpet=off",
    "-cpu",
    "host",
    "-kernel",
    "bzImage",
    "-m",
    "1G",
    "-smp",
    "2",
    "-nographic",
    "-serial",
    "mon:stdio",
    "-monitor",
    "none",
    "-vga",
    "none",
    "-rtc",
    "base=utc,clock=host",
    "-nodefaults",
    "-no-user-config",
    "-nic",
    "none",
    "-net",
    "none",
    "-parallel",
    "none",
    "-device",
    "isa-debug-exit,iobase=0xf4,iosize=0x04",
  ]);
  assert.deepEqual(qemu, plain);
  assert.deepEqual(parseCli(["-M", "pc", "-cpu", "max", "-serial", "stdio"]), parseCli([]));
});

Deno.test("parseCli: -drive if=none with -device virtio-blk-pci, -object iothread, -device virtio-rng-pci", () => {
  const o = parseCli([
    "-kernel",
    "bzImage",
    "-object",
    "iothread,id=io0",
    "-object",
    "iothread,id=io1",
    "-drive",
    "file=b.img,if=none,id=d1,format=raw,readonly=on,cache=none",
    "-device",
    "virtio-blk-pci,drive=d1,iothread=io1,num-queues=2,id=blk1",
    "-drive",
    "file=a.img,if=virtio",
    "-drive",
    "file=c.img,if=none,id=d2,aio=io_uring",
    "-device",
    "virtio-blk-pci,drive=d2,serial=disk-c",
    "-netdev",
    "tap,id=n0,ifname=tap0",
    "-device",
    "virtio-net-pci,netdev=n0,iothread=io0",
    "-device",
    "virtio-rng-pci,max-bytes=1024,period=500",
  ]);
  // if=virtio drives first, then the devices' drives in -device order (QEMU's PCI order).
  assert.deepEqual(o.disks, [
    "a.img",
    "b.img,ro,cache=none,iothread=1,num-queues=2",
    "c.img,aio=io_uring,serial=disk-c",
  ]);
  assert.deepEqual(o.nics, ["tap,ifname=tap0,id=n0,iothread=0"]);
  assert.deepEqual(o.rng, { rateBytesPerSec: 2048 });
  assert.deepEqual(parseCli(["-device", "virtio-rng-pci"]).rng, {});
});

Deno.test("parseCli: snapshot=on per disk, or -snapshot for every disk but one that says snapshot=off", () => {
  const o = parseCli([
    "-kernel",
    "bzImage",
    "-snapshot",
    "--disk",
    "a.img",
    "-drive",
    "file=b.img,if=virtio,snapshot=off",
    "-drive",
    "file=c.img,if=none,id=c",
    "-device",
    "virtio-blk-pci,drive=c",
  ]);
  assert.deepEqual(o.disks, ["a.img,snapshot=on", "b.img,snapshot=off", "c.img,snapshot=on"]);
  assert.deepEqual(parseCli(["-kernel", "k", "-drive", "file=d.img,if=virtio,snapshot=on"]).disks, [
    "d.img,snapshot=on",
  ]);
  assert.deepEqual(parseCli(["-kernel", "k", "--disk", "e.img,snapshot=on"]).disks, [
    "e.img,snapshot=on",
  ]);
  assert.throws(
    () => parseCli(["-kernel", "k", "--disk", "e.img,snapshot=2"]),
    /Invalid snapshot value 2/,
  );
});

Deno.test("parseCli: what a QEMU command line asks for and denovmm has not is one line naming what it has", () => {
  const k = ["-kernel", "bzImage"];
  const drive = ["-drive", "file=a.img,if=none,id=d0"];
  const cases: [string[], RegExp][] = [
    [["-accel", "tcg"], /^Invalid -accel 'tcg': denovmm runs guests on KVM only: use kvm$/],
    [["-accel", "kvm,kernel-irqchip=split"], /Invalid -accel .*use on or off/],
    [["-accel", "kvm,kernel-irqchip=off"], /the irqchip is in the kernel/],
    [
      ["-M", "q35"],
      /^Invalid -M 'q35': denovmm has one machine type, a PC without firmware: use pc$/,
    ],
    [["-machine", "microvm,accel=kvm"], /Invalid -machine 'microvm,accel=kvm': denovmm has one/],
    [["-machine", "pc,accel=tcg"], /KVM only/],
    [["-machine", "pc,usb=on"], /usb=on: denovmm has no USB controller/],
    [["-machine", "pc,nvdimm=on"], /unknown sub-option 'nvdimm'/],
    [["-cpu", "qemu64"], /^Invalid -cpu 'qemu64': only host \(or max\)/],
    [["-cpu", "host,+x2apic"], /Invalid -cpu 'host,\+x2apic': only host/],
    [["-serial", "pty"], /Invalid -serial 'pty': the serial console is this terminal/],
    [["-monitor", "stdio"], /use -qmp unix:PATH,server,wait=off/],
    [["-vga", "std"], /Invalid -vga 'std': no emulated VGA card: -vnc :N adds a framebuffer/],
    [["-rtc", "base=localtime"], /base=localtime: the CMOS clock keeps base=utc/],
    [["-object", "memory-backend-ram,id=m,size=1G"], /only -object iothread,id=ID/],
    [["-object", "iothread"], /Invalid -object 'iothread': needs id=ID/],
    [["-object", "iothread,id=a", "-object", "iothread,id=a"], /id a is used twice/],
    [
      ["-device", "e1000"],
      /'e1000': e1000 is not a device here \(use virtio-blk-pci, virtio-net-pci/,
    ],
    [[...k, "-device", "virtio-blk-pci,drive=x"], /drive=x names no -drive if=none,id=x/],
    [[...k, "-device", "virtio-blk-pci"], /needs drive=ID of a -drive if=none/],
    [[...k, "-drive", "file=a.img,if=none"], /if=none needs id=ID/],
    [[...k, ...drive], /-drive id d0 \(if=none\) has no -device virtio-blk-pci,drive=d0/],
    [[...k, "-drive", "file=a.img,if=ide"], /if=ide: use if=virtio, or if=none with -device/],
    [
      [...k, ...drive, "-device", "virtio-blk-pci,drive=d0", "-device", "virtio-blk-pci,drive=d0"],
      /attached twice/,
    ],
    [
      [...k, ...drive, "-device", "virtio-blk-pci,drive=d0,iothread=io9"],
      /iothread=io9 names no -object iothread,id=io9/,
    ],
    [
      [...k, ...drive, "-device", "virtio-blk-pci,drive=d0,num-queues=0"],
      /num-queues=0 is not a positive/,
    ],
    [[...k, ...drive, "-device", "virtio-blk-pci,drive=d0,scsi=off"], /unknown sub-option 'scsi'/],
    [[...drive, "-device", "virtio-blk-pci,drive=d0"], /needs --kernel/],
    [
      ["-device", "virtio-rng-pci", "--rng", "off"],
      /--rng and -device virtio-rng-pci both set the RNG/,
    ],
    [["-device", "virtio-rng-pci,period=10"], /period needs max-bytes/],
    [["-device", "virtio-rng-pci,max-bytes=1,period=2000"], /under one byte per second/],
    [["-device", "virtio-rng-pci", "-device", "virtio-rng-pci"], /one virtio-rng-pci/],
    [
      ["-device", "isa-debug-exit,iobase=0x501"],
      /iobase=0x501: denovmm's isa-debug-exit is at iobase=0xf4/,
    ],
    [["-device", "isa-debug-exit,iosize=8"], /iosize=8/],
    [["-net", "nic"], /Invalid -net 'nic': only none/],
    [["-parallel", "stdio"], /there is no parallel port/],
    [
      [...k, "-nic", "none", "-nic", "tap,ifname=t0"],
      /-nic none and -nic tap,ifname=t0 contradict/,
    ],
  ];
  for (const [args, re] of cases) {
    assert.throws(
      () => parseCli(args),
      (e) => e instanceof UsageError && re.test(e.message),
      args.join(" "),
    );
  }
});

Deno.test("-serial file:PATH and null send the console's output to a file; stdio and mon:stdio keep the terminal", async () => {
  assert.equal(parseCli(["-serial", "file:out/console.log"]).serialFile, "out/console.log");
  assert.equal(parseCli(["-serial", "null"]).serialFile, "/dev/null");
  assert.equal(parseCli(["-serial", "mon:stdio"]).serialFile, undefined);
  assert.deepEqual((await vmConfigFromCli(parseCli(["-serial", "file:c.log"]))).serial, {
    file: "c.log",
  });
  assert.equal((await vmConfigFromCli(parseCli([]))).serial, "stdio");
  assert.throws(() => parseCli(["-serial", "file:"]), /Invalid -serial 'file:'/);
  assert.throws(() => parseCli(["-serial", "tcp:localhost:4444"]), /file:PATH or null/);
});

Deno.test("every --disk option reaches the VmConfig the CLI builds (none dropped on the way)", async () => {
  const spec = "a.img,ro,aio=io_uring,iothread=1,cache=none,serial=s1,num-queues=2,snapshot=on";
  const c = await vmConfigFromCli(parseCli(["-kernel", "k", "--disk", spec]));
  const parsed = parseDiskOption(spec);
  assert.deepEqual(c.disks, [parsed]);
  // Every option the parser knows was given above: a new one must be added here too.
  assert.deepEqual(
    Object.keys(parsed).sort(),
    ["aio", "cache", "iothread", "numQueues", "path", "readOnly", "serial", "snapshot"],
  );
});
