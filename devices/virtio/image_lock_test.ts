import assert from "node:assert/strict";
import { closeFd, O_RDONLY, O_RDWR, openFile } from "../../sys/fd.ts";
import { ensureAptPackages } from "../../tests/fixtures/debian.ts";
import { type DiskFile, openDisk, parseDiskOption } from "./disk_file.ts";
import { ImageLockError, lockImage } from "./image_lock.ts";

Deno.test("image locks: readers share, a writer excludes everyone, per open file", () => {
  const path = Deno.makeTempFileSync({ suffix: ".img" });
  Deno.truncateSync(path, 4096);
  const fds: number[] = [];
  const open = (ro: boolean) => {
    const fd = openFile(path, ro ? O_RDONLY : O_RDWR);
    fds.push(fd);
    return fd;
  };
  try {
    const w = open(false);
    lockImage(w, false);
    assert.throws(() => lockImage(open(false), false), ImageLockError);
    assert.throws(() => lockImage(open(true), true), /shared "write" lock/);
    closeFd(fds.shift()!); // closing the writer's fd releases its locks
    const r1 = open(true), r2 = open(true);
    lockImage(r1, true);
    lockImage(r2, true);
    assert.throws(() => lockImage(open(false), false), /Failed to get "write" lock/);
  } finally {
    for (const fd of fds) closeFd(fd);
    Deno.removeSync(path);
  }
});

/** Outcome of each contender while a holder has the image: true = it got the image. */
interface Outcomes {
  qemuIoWrite: boolean;
  qemuIoRead: boolean;
  denovmmWrite: boolean;
  denovmmRead: boolean;
}

async function qemuIo(path: string, readOnly: boolean): Promise<boolean> {
  const args = ["-f", "raw", ...(readOnly ? ["-r", "-c", "read 0 512"] : ["-c", "write 0 512"])];
  const out = await new Deno.Command("qemu-io", { args: [...args, path], stdout: "null" })
    .output();
  const err = new TextDecoder().decode(out.stderr);
  if (!out.success) assert.match(err, /Failed to get .*lock/, err);
  return out.success;
}

function denovmm(path: string, readOnly: boolean): boolean {
  let d: DiskFile | null = null;
  try {
    d = openDisk(parseDiskOption(path + (readOnly ? ",ro" : "")));
    return true;
  } catch (e) {
    assert.match((e as Error).message, /in use by another process/);
    return false;
  } finally {
    d?.close();
  }
}

async function contenders(path: string): Promise<Outcomes> {
  return {
    qemuIoWrite: await qemuIo(path, false),
    qemuIoRead: await qemuIo(path, true),
    denovmmWrite: denovmm(path, false),
    denovmmRead: denovmm(path, true),
  };
}

/** Runs `body` while qemu-system-x86_64 has the image on a virtio-blk device. */
async function withQemu(path: string, readOnly: boolean, body: () => Promise<Outcomes>) {
  const drive = `file=${path},format=raw,if=virtio${readOnly ? ",readonly=on" : ""}`;
  const qemu = new Deno.Command("qemu-system-x86_64", {
    args: ["-machine", "q35,accel=tcg", "-nodefaults", "-display", "none", "-S"]
      .concat(["-monitor", "stdio", "-drive", drive]),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = qemu.stdin.getWriter();
  try {
    // Monitor commands run once the machine (and its disk) is set up.
    await writer.write(new TextEncoder().encode("info block\n"));
    const reader = qemu.stdout.getReader();
    let seen = "";
    while (!seen.includes(path)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`QEMU exited: ${seen}`);
      seen += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    return await body();
  } finally {
    await writer.write(new TextEncoder().encode("quit\n")).catch(() => {});
    await writer.close().catch(() => {});
    await qemu.stdout.cancel().catch(() => {});
    await qemu.stderr.cancel().catch(() => {});
    await qemu.status;
  }
}

Deno.test({
  name: "image locks: QEMU and denovmm refuse each other as two QEMU processes do",
  sanitizeResources: false,
  async fn() {
    await ensureAptPackages(["qemu-utils", "qemu-system-x86"]);
    const path = Deno.makeTempFileSync({ suffix: ".img" });
    Deno.truncateSync(path, 1 << 20);
    try {
      for (const readOnly of [false, true]) {
        const underQemu = await withQemu(path, readOnly, () => contenders(path));
        const held = openDisk(parseDiskOption(path + (readOnly ? ",ro" : "")));
        let underUs: Outcomes;
        try {
          underUs = await contenders(path);
        } finally {
          held.close();
        }
        const mode = readOnly ? "read-only" : "read-write";
        // What QEMU 7.2 does with a second user of an image a virtio-blk disk holds.
        assert.deepEqual(underQemu, {
          qemuIoWrite: false,
          qemuIoRead: true,
          denovmmWrite: false,
          denovmmRead: readOnly,
        }, `contenders of a ${mode} QEMU disk`);
        assert.deepEqual(underUs, underQemu, `denovmm holding ${mode} acts like QEMU`);
      }
      assert.deepEqual(await contenders(path), {
        qemuIoWrite: true,
        qemuIoRead: true,
        denovmmWrite: true,
        denovmmRead: true,
      }, "nothing left locked");
    } finally {
      Deno.removeSync(path);
    }
  },
});
