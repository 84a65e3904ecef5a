// --vnc and --display on the command line: accepted spellings and the one-line refusals.
import assert from "node:assert/strict";
import { parseCli, UsageError } from "../../machine/cli.ts";
import { vmConfigFromCli } from "../../machine/cli_config.ts";

const repo = new URL("../..", import.meta.url).pathname;

Deno.test("--vnc and --display parse, and their mistakes are UsageErrors", () => {
  const o = parseCli(["--kernel", "k", "--vnc", ":1,websocket,password-file=/tmp/pw"]);
  assert.equal(o.vnc, ":1,websocket,password-file=/tmp/pw");
  assert.equal(parseCli(["--kernel", "k"]).vnc, undefined);
  assert.equal(parseCli(["--kernel", "k", "--display", "none"]).display, "none");
  const bad: [string[], RegExp][] = [
    [["--kernel", "k", "--vnc", "5900"], /Invalid --vnc '5900': expected :N or HOST:N/],
    [["--kernel", "k", "--vnc", ":0,password=x"], /password-file=PATH/],
    [["--kernel", "k", "--vnc", ":0,tablet=maybe"], /tablet wants on or off, got 'maybe'/],
    [["--vnc", ":0"], /--vnc needs --kernel/],
    [["--kernel", "k", "--vnc", ":0", "--display", "none"], /drop --display none/],
    [["--kernel", "k", "--display", "sdl"], /Invalid --display 'sdl'/],
    [["--kernel", "k", "--display", "vnc"], /--display vnc needs --vnc/],
  ];
  for (const [args, re] of bad) {
    assert.throws(
      () => parseCli(args),
      (e) => e instanceof UsageError && re.test(e.message),
      args.join(" "),
    );
  }
});

Deno.test("-device virtio-tablet-pci asks for the tablet beside -netdev/-device NIC pairs", async () => {
  const k = ["--kernel", "k"];
  assert.equal(parseCli(k).tablet, false);
  assert.equal((await vmConfigFromCli(parseCli(k))).tablet, undefined, "default: with --vnc");
  const o = parseCli([...k, "-device", "virtio-tablet-pci,id=tab0"]);
  assert.equal(o.tablet, true);
  assert.equal((await vmConfigFromCli(o)).tablet, true);
  const mixed = parseCli([
    ...k,
    "-netdev",
    "tap,id=n0,ifname=tap0",
    "-device",
    "virtio-tablet-pci",
    "-device",
    "virtio-net-pci,netdev=n0",
  ]);
  assert.equal(mixed.tablet, true);
  assert.deepEqual(mixed.nics, ["tap,ifname=tap0,id=n0"]); // the netdev id stays the NIC id
  assert.throws(
    () => parseCli([...k, "-device", "virtio-tablet-pci,bus=pci.0"]),
    (e) => e instanceof UsageError && /virtio-tablet-pci takes only id=/.test(e.message),
  );
});

Deno.test("main.ts: a bad --vnc or an unreadable password file is one line and exit 1, before KVM", async () => {
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-check", "--allow-ffi", "main.ts", ...args],
      cwd: repo,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, err: new TextDecoder().decode(out.stderr) };
  };
  const a = await run(["--kernel", "/nonexistent", "--vnc", "nope"]);
  assert.equal(a.code, 1);
  assert.equal(a.err.trim().split("\n").length, 1, a.err);
  assert.match(a.err, /Invalid --vnc 'nope'/);
  // A real bzImage header is needed to get past the kernel check: the cached Debian kernel.
  let kernel: string | undefined;
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(`${repo}/.cache/debian`)].filter((e) => e.isDirectory);
  } catch { /* no fixtures yet */ }
  for (const e of entries) {
    try {
      const boot = `${repo}/.cache/debian/${e.name}/boot`;
      for (const f of Deno.readDirSync(boot)) {
        if (f.name.startsWith("vmlinuz-")) kernel = `${boot}/${f.name}`;
      }
    } catch { /* not a kernel package */ }
  }
  if (!kernel) {
    console.log("no cached Debian kernel: password-file check skipped");
    return;
  }
  const b = await run(["--kernel", kernel, "--vnc", ":0,password-file=/nonexistent/pw"]);
  assert.equal(b.code, 1);
  assert.equal(b.err.trim().split("\n").length, 1, b.err);
  assert.match(b.err, /cannot read VNC password file '\/nonexistent\/pw'/);
  const c = await run([
    "--kernel",
    kernel,
    "-device",
    "virtio-tablet-pci",
    "--vnc",
    ":0,tablet=off",
  ]);
  assert.equal(c.code, 1);
  assert.equal(c.err.trim().split("\n").length, 1, c.err);
  assert.match(c.err, /--vnc tablet=off conflicts with a virtio-tablet-pci device/);
});
