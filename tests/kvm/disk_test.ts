// Debian's stock kernel with a virtio-blk disk under `main.ts --disk`, run
// under --allow-ffi alone as users run it (an iothread's aio Workers load as
// served modules: sys/worker_url.ts): the
// guest (2 vCPUs: two request queues by default) makes an ext4 file system,
// writes a file and powers off; a second boot (on an iothread, io_uring when
// the host has it, num-queues=1 given) writes and syncs another file and is
// killed with SIGKILL; a third boot (1 vCPU, INTx), its command line as a
// QEMU user types it (-enable-kvm, -cpu host, -machine, -drive if=none with
// -device virtio-blk-pci, -serial mon:stdio, ...), finds both files with
// the checksums the host expects, and with -snapshot leaves the image as it
// was.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { INIT_MARKER } from "../fixtures/initramfs.ts";
import { DISK_MARKER, diskInitramfs, linuxFixture } from "./fixtures.ts";
import { ioUringAvailable } from "../../aio/io_uring.ts";
import { runVmm } from "./_vmm_process.ts";

const DISK_BYTES = 64 << 20;

function seqText(n: number): string {
  let s = "";
  for (let i = 1; i <= n; i++) s += `${i}\n`;
  return s;
}

function md5(data: string | Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** Runs main.ts; with `killAfter`, SIGKILLs it once stdout matches (a whole line). */
async function boot(args: string[], options: { killAfter?: RegExp } = {}) {
  const killAfter = options.killAfter;
  let killed = false;
  const r = await runVmm(args, {
    onStdout: (stdout, vmm) => {
      if (!killAfter || killed || !killAfter.test(stdout)) return;
      killed = true;
      vmm.kill("SIGKILL");
    },
  });
  console.log(`boot ${args.at(-1)}: ${r.seconds.toFixed(1)} s`);
  return { ...r, code: r.signal ? null : r.code };
}

function report(stdout: string, key: string): string | undefined {
  return stdout.match(new RegExp(`${DISK_MARKER} ${key}=(\\S+)`))?.[1];
}

Deno.test("virtio-blk: mkfs.ext4, write, power off; SIGKILL after sync; data intact", async () => {
  const f = await linuxFixture();
  const initrd = await diskInitramfs();
  const dir = await Deno.makeTempDir({ prefix: "denovmm-disk-" });
  const image = `${dir}/disk.img`;
  try {
    await Deno.writeFile(image, new Uint8Array(0));
    await Deno.truncate(image, DISK_BYTES);
    const common = ["--kernel", f.kernel, "--initrd", initrd, "--memory", "256M"];
    const cmdline = (mode: string, extra = "") => [
      "--append",
      `console=ttyS0 panic=-1 quiet denovmm.disk=${mode}${extra}`,
    ];

    // 1: main loop, thread pool, 2 vCPUs.
    const first = await boot([...common, "--cpus", "2", ...cmdline("mkfs"), "--disk", image]);
    const log1 = `${first.stdout.slice(-4000)}\n${first.stderr}`;
    assert.match(first.stdout, new RegExp(`${DISK_MARKER} devices=.*vda`), log1);
    assert.equal(report(first.stdout, "written"), md5(seqText(100000)), log1);
    assert.ok(first.stdout.includes(`${INIT_MARKER} script-exit=0`), log1);
    assert.equal(first.code, 0, log1);
    // MSI-X vectors, not INTx, carried the completions.
    assert.ok(Number(report(first.stdout, "irqs")) >= 1, log1);
    // One request queue per vCPU by default (VIRTIO_BLK_F_MQ, as QEMU): blk-mq made two.
    assert.equal(report(first.stdout, "queues"), "2", log1);

    // 2: an iothread and io_uring where available; killed after its sync.
    const aio = ioUringAvailable() === null ? "io_uring" : "threads";
    const second = await boot(
      // 2 vCPUs but num-queues=1 given: one queue.
      [
        ...common,
        "--cpus",
        "2",
        ...cmdline("kill"),
        "--disk",
        `${image},iothread=1,aio=${aio},num-queues=1`,
      ],
      { killAfter: new RegExp(`${DISK_MARKER} synced-written=\\S+\\r?\\n`) },
    );
    const log2 = `${second.stdout.slice(-4000)}\n${second.stderr}`;
    assert.equal(second.signal, "SIGKILL", log2);
    assert.equal(report(second.stdout, "synced-written"), md5(seqText(50000)), log2);
    assert.equal(report(second.stdout, "queues"), "1", log2);

    // 3: both files are there (the lock died with the killed VMM).
    // pci=nomsi: completions take the INTx path (_PRT, KVM_IRQ_LINE).
    // -snapshot: what this boot writes (ext4's journal replay after the kill,
    // its mount) goes to a temporary copy; the image keeps its bytes.
    const imageBefore = md5(await Deno.readFile(image));
    const third = await boot([
      "-enable-kvm",
      "-cpu",
      "host",
      "-machine",
      "pc,accel=kvm,usb=off",
      "-nodefaults",
      "-no-user-config",
      "-snapshot",
      "-serial",
      "mon:stdio",
      "-drive",
      `file=${image},if=none,id=disk0,format=raw,cache=writeback`,
      "-device",
      "virtio-blk-pci,drive=disk0,id=blk0",
      ...common,
      ...cmdline("check", " pci=nomsi"),
    ]);
    const log3 = `${third.stdout.slice(-4000)}\n${third.stderr}`;
    assert.equal(report(third.stdout, "data"), md5(seqText(100000)), log3);
    assert.equal(report(third.stdout, "synced"), md5(seqText(50000)), log3);
    assert.equal(third.code, 0, log3);
    assert.equal(report(third.stdout, "queues"), "1", log3);
    assert.equal(
      md5(await Deno.readFile(image)),
      imageBefore,
      "-snapshot left the image as it was",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
