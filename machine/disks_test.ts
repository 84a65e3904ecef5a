// --disk on real files: every mistake a user can make is one DiskError line,
// and nothing stays open (or locked) after a failure. No KVM needed.
import assert from "node:assert/strict";
import { DiskError, openDisks } from "./disks.ts";
import { gsiRoutes } from "./pci_devices.ts";
import { parseCli, UsageError } from "./cli.ts";
import { VirtioPciDevice, virtioPciSpecOf } from "../devices/virtio/pci.ts";
import { VirtioBlock } from "../devices/virtio/block.ts";
import { SyncAio } from "../devices/virtio/sync_io.ts";

const isRoot = Deno.uid() === 0;

function oneLine(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DiskError, String(e));
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n"), e.message);
    return true;
  });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-disks-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("openDisks: opens, locks and releases a good image", async () => {
  await withDir(async (dir) => {
    const img = `${dir}/a.img`;
    await Deno.writeFile(img, new Uint8Array(1 << 20));
    const [d] = openDisks([`${img},iothread=2`]);
    assert.equal(d.file.size, 1 << 20);
    assert.equal(d.options.iothread, 2);
    assert.equal(d.options.aio, "threads");
    // A second writer is refused while the first holds the lock...
    oneLine(() => openDisks([img]), /in use by another process/);
    d.file.close();
    // ...and welcome once it is gone.
    openDisks([img, `${img}2,ro`].slice(0, 1))[0].file.close();
  });
});

Deno.test("openDisks: missing file, odd size, bad option", async () => {
  await withDir(async (dir) => {
    oneLine(() => openDisks([`${dir}/nope.img`]), /nope\.img does not exist/);
    await Deno.writeFile(`${dir}/odd.img`, new Uint8Array(1000));
    oneLine(() => openDisks([`${dir}/odd.img`]), /size 1000 is not a multiple of 512/);
    await Deno.writeFile(`${dir}/ok.img`, new Uint8Array(512));
    oneLine(() => openDisks([`${dir}/ok.img,aio=posix`]), /Invalid --disk .*aio/);
    oneLine(() => openDisks([`${dir}/ok.img,frob`]), /Unknown disk option "frob"/);
    // The first disk was opened before the second failed: it is released.
    oneLine(() => openDisks([`${dir}/ok.img`, `${dir}/odd.img`]), /not a multiple/);
    openDisks([`${dir}/ok.img`])[0].file.close();
    oneLine(() => openDisks([dir]), /Cannot open disk image .*: it is a directory$/);
    oneLine(() => openDisks([`${dir},ro`]), /not a regular file or block device/);
  });
});

Deno.test("openDisks: an image another process holds with flock(1)", async () => {
  await withDir(async (dir) => {
    const img = `${dir}/held.img`;
    await Deno.writeFile(img, new Uint8Array(4096));
    const ready = `${dir}/ready`;
    const holder = new Deno.Command("flock", {
      args: ["-x", img, "sh", "-c", `touch ${ready}; sleep 30`],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      for (let i = 0; i < 500; i++) {
        try {
          await Deno.stat(ready);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      oneLine(() => openDisks([img]), /held\.img is in use by another process/);
      oneLine(
        () => openDisks([`${img},ro`]),
        /in use by another process that opened it read-write/,
      );
    } finally {
      holder.kill("SIGKILL");
      await holder.status;
    }
  });
});

Deno.test({
  name: "openDisks: no permission (as nobody) is one line through main.ts's path",
  ignore: !isRoot,
  fn: async () => {
    await withDir(async (dir) => {
      await Deno.chmod(dir, 0o755);
      const img = `${dir}/secret.img`;
      await Deno.writeFile(img, new Uint8Array(4096));
      await Deno.chmod(img, 0o000);
      const denoDir = `${dir}/deno`;
      await Deno.mkdir(denoDir, { mode: 0o777 });
      await Deno.chmod(denoDir, 0o777);
      const code = `import { openDisks } from ${JSON.stringify(import.meta.resolve("./disks.ts"))};
try { openDisks([${JSON.stringify(img)}]); console.log("opened"); }
catch (e) { console.log(e.name + ": " + e.message); }`;
      const out = await new Deno.Command("runuser", {
        args: ["-u", "nobody", "--", Deno.execPath(), "eval", "--no-check", code],
        env: { DENO_DIR: denoDir, HOME: denoDir, NO_COLOR: "1" },
        stdin: "null",
      }).output();
      const text = new TextDecoder().decode(out.stdout).trim();
      assert.match(
        text,
        /^DiskError: No permission to open disk image .*secret\.img read-write$/,
        new TextDecoder().decode(out.stderr),
      );
    });
  },
});

Deno.test("parseCli: --disk syntax is checked up front and needs --kernel", () => {
  assert.deepEqual(parseCli(["--kernel", "k", "--disk", "a.img,ro"]).disks, ["a.img,ro"]);
  for (
    const [args, re] of [
      [["--kernel", "k", "--disk", "a.img,cache=maybe"], /Invalid --disk 'a\.img,cache=maybe'/],
      [["--kernel", "k", "--disk", ",ro"], /needs a path/],
      [["--kernel", "k", "--disk", "a.img,iothread=-1"], /Invalid iothread/],
      [["--kernel", "k", "--disk", "a.img,num-queues=0"], /Invalid num-queues 0: use 1 to 64/],
      [["--kernel", "k", "--disk", "a.img,num-queues=65"], /Invalid num-queues 65/],
      [["--kernel", "k", "--disk", "a.img,num-queues="], /Invalid num-queues/],
      [["--disk", "a.img"], /--disk needs --kernel/],
    ] as [string[], RegExp][]
  ) {
    assert.throws(() => parseCli(args), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, re);
      return true;
    });
  }
});

Deno.test("GSI routing keeps KVM's pin routes and adds programmed MSI-X vectors", () => {
  const disk = { fd: -1, size: 1 << 20, readOnly: false };
  const spec = virtioPciSpecOf(new VirtioBlock({ disk, aio: new SyncAio() }));
  const dev = new VirtioPciDevice(spec);
  const base = gsiRoutes([{ device: dev, msiGsiBase: 24 }]);
  // 24 IOAPIC pins + 16 PIC pins, as KVM's default table.
  assert.equal(base.length, 40);
  assert.equal(base.filter((r) => r.kind === "irqchip" && r.irqchip === 2).length, 24);
  assert.deepEqual(
    base.filter((r) => r.gsi === 9).map((r) => r.kind === "irqchip" && [r.irqchip, r.pin]),
    [[2, 9], [1, 1]],
  );
  // Program vector 1 and enable MSI-X the way a driver does.
  dev.barWrite(0, 0x4000 + 16, new Uint8Array([0x00, 0x00, 0xe0, 0xfe]));
  dev.barWrite(0, 0x4000 + 24, new Uint8Array([0x41, 0, 0, 0]));
  const ctl = dev.msix.capOffset + 2;
  dev.configWrite(ctl + 1, new Uint8Array([0x80]));
  const msi = gsiRoutes([{ device: dev, msiGsiBase: 24 }]).filter((r) => r.kind === "msi");
  assert.deepEqual(msi, [{
    gsi: 25,
    kind: "msi",
    addressLo: 0xfee00000,
    addressHi: 0,
    data: 0x41,
  }]);
});
