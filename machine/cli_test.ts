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
