// `--nic`, `--netdev`/`--device`, `--rng` and `--console` as users type
// them: parsing, and each tap problem ending in one line and exit 1 (no
// KVM needed: every case fails before a VM exists).
import assert from "node:assert/strict";
import { parseCli, UsageError } from "../../machine/cli.ts";
import { vmConfigFromCli } from "../../machine/cli_config.ts";
import { defaultMac, nicsFromNetdevs, parseMac, parseNicOption } from "./net_backend.ts";
import { openTap } from "../../sys/tun.ts";
import { vhostNetAvailable } from "./vhost_net.ts";
import { linuxFixture } from "../../tests/kvm/fixtures.ts";

const repo = new URL("../..", import.meta.url).pathname;

Deno.test("--nic parsing: ifname, mac, iothread, vhost; errors name the part", () => {
  assert.deepEqual(parseNicOption("tap,ifname=tap0,mac=52:54:00:AA:00:01,iothread=2,vhost=on"), {
    ifname: "tap0",
    mac: "52:54:00:aa:00:01",
    iothread: 2,
    vhost: true,
  });
  assert.throws(() => parseNicOption("user"), /only tap/);
  assert.throws(() => parseNicOption("tap"), /ifname=NAME is required/);
  assert.throws(() => parseNicOption("tap,ifname=waytoolongname123"), /invalid ifname/);
  assert.throws(() => parseNicOption("tap,ifname=t,vhost=yes"), /vhost must be on or off/);
  assert.throws(() => parseNicOption("tap,ifname=t,mac=01:00:00:00:00:01"), /multicast/);
  assert.throws(() => parseNicOption("tap,ifname=t,speed=10"), /unknown option 'speed'/);
  assert.equal(parseNicOption("tap,ifname=t,id=lan0").id, "lan0");
  assert.throws(() => parseNicOption("tap,ifname=t,id=0x"), /invalid id '0x'/);
  assert.deepEqual([...parseMac("02:00:00:00:00:ff")], [2, 0, 0, 0, 0, 255]);
  assert.equal(defaultMac(0), "52:54:00:12:34:56");
  assert.equal(defaultMac(0xaa), "52:54:00:12:35:00");
});

Deno.test("--netdev/--device pairs fold into --nic values", () => {
  assert.deepEqual(
    nicsFromNetdevs(
      ["tap,id=a,ifname=t0,vhost=on", "tap,id=b,ifname=t1"],
      ["virtio-net-pci,netdev=b,mac=52:54:00:00:00:02", "virtio-net-pci,netdev=a"],
    ),
    ["tap,ifname=t1,id=b,mac=52:54:00:00:00:02", "tap,ifname=t0,vhost=on,id=a"],
  );
  assert.throws(() => nicsFromNetdevs(["tap,id=a,ifname=t0"], []), /no --device/);
  assert.throws(() => nicsFromNetdevs([], ["virtio-net-pci,netdev=x"]), /must name a --netdev/);
  assert.throws(() => nicsFromNetdevs([], ["e1000,netdev=x"]), /only virtio-net-pci/);
});

Deno.test("parseCli: --nic, --rng and --console", () => {
  const o = parseCli([
    "--kernel",
    "k",
    "--nic",
    "tap,ifname=t0",
    "--netdev",
    "tap,id=n,ifname=t1",
    "--device",
    "virtio-net-pci,netdev=n",
    "--rng",
    "rate=4096",
    "--console",
    "virtio",
  ]);
  assert.deepEqual(o.nics, ["tap,ifname=t0", "tap,ifname=t1,id=n"]);
  assert.deepEqual(o.rng, { rateBytesPerSec: 4096 });
  assert.equal(o.console, "virtio");
  const d = parseCli(["--kernel", "k"]);
  assert.deepEqual(d.rng, {}, "virtio-rng is on by default");
  assert.equal(d.console, "serial");
  assert.equal(parseCli(["--kernel", "k", "--rng", "off"]).rng, false);
  assert.throws(() => parseCli(["--kernel", "k", "--rng", "fast"]), UsageError);
  assert.throws(() => parseCli(["--kernel", "k", "--console", "tty"]), /Invalid --console 'tty'/);
  assert.throws(() => parseCli(["--nic", "tap,ifname=t0"]), /need --kernel/);
  assert.throws(() => parseCli(["--kernel", "k", "--nic", "tap"]), /Invalid --nic 'tap'/);
});

Deno.test("--console virtio adds console=hvc0 unless --append names a console", async () => {
  const append = async (...args: string[]) =>
    (await vmConfigFromCli(parseCli(["--kernel", "k", ...args]))).append;
  assert.equal(await append("--console", "virtio"), "console=hvc0");
  assert.equal(await append("--console", "virtio", "--append", "quiet"), "quiet console=hvc0");
  assert.equal(await append("--console", "virtio", "--append", ""), "console=hvc0");
  assert.equal(
    await append("--console", "virtio", "--append", "console=ttyS0,115200"),
    "console=ttyS0,115200",
  );
  assert.equal(
    await append("--console", "virtio", "--append", "quiet console=tty0"),
    "quiet console=tty0",
  );
  // "xconsole=" is not a console= parameter.
  assert.equal(
    await append("--console", "virtio", "--append", "xconsole=1"),
    "xconsole=1 console=hvc0",
  );
  // The serial console keeps the line as given (and the default when none).
  assert.equal(await append("--append", "quiet"), "quiet");
  assert.equal(await append(), undefined);
});

async function vmm(args: string[], wrap: string[] = []) {
  const argv = [...wrap, Deno.execPath(), "run", "--allow-ffi", `${repo}main.ts`, ...args];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: repo,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

function oneLine(r: { code: number; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^denovmm: /);
  assert.match(lines[0], re);
}

Deno.test("a tap that cannot be had: one line, exit 1", async () => {
  const { kernel } = await linuxFixture();
  oneLine(
    await vmm(["--kernel", kernel, "--nic", "tap,ifname=t0,vhost=maybe"]),
    /Invalid --nic 'tap,ifname=t0,vhost=maybe': vhost must be on or off/,
  );
  if (Deno.uid() === 0) {
    // Held by this process: the kernel says EBUSY.
    const held = openTap(`dvmbusy${Deno.pid % 10000}`);
    try {
      oneLine(
        await vmm(["--kernel", kernel, "--nic", `tap,ifname=${held.name}`]),
        new RegExp(`Cannot open tap ${held.name}: it is in use by another process`),
      );
    } finally {
      held.close();
    }
  }
  if (vhostNetAvailable() !== null) {
    oneLine(
      await vmm(["--kernel", kernel, "--nic", "tap,ifname=dvmvh0,vhost=on"]),
      /Cannot use vhost=on for tap dvmvh0: \/dev\/vhost-net/,
    );
  }
  // Without privilege: /dev/net/tun is root's (0600) on these hosts, or
  // creating the tap needs CAP_NET_ADMIN.
  await Deno.chmod(kernel, 0o644).catch(() => {});
  const wrap = Deno.uid() === 0 ? ["runuser", "-u", "nobody", "--"] : [];
  oneLine(
    await vmm(["--kernel", kernel, "--nic", "tap,ifname=dvmnopriv0"], wrap),
    /Cannot open tap dvmnopriv0: (no permission to open \/dev\/net\/tun|.*CAP_NET_ADMIN)/,
  );
});
