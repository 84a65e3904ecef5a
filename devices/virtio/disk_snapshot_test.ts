import assert from "node:assert/strict";
import { dataExtents } from "./disk_snapshot.ts";
import { openDisk, parseDiskOption } from "./disk_file.ts";
import { libc } from "../../sys/libc.ts";
import { closeFd, fstat, O_RDONLY, openFile } from "../../sys/fd.ts";

function pread(fd: number, len: number, off: number): Uint8Array {
  const buf = new Uint8Array(len);
  assert.equal(Number(libc.pread(fd, buf, BigInt(len), BigInt(off))), len);
  return buf;
}

Deno.test("snapshot=on: the guest writes a sparse temporary copy; the image keeps its bytes and stays free", () => {
  const dir = Deno.makeTempDirSync();
  const tmp = `${dir}/tmp`;
  Deno.mkdirSync(tmp);
  const before = Deno.env.get("TMPDIR");
  Deno.env.set("TMPDIR", tmp);
  try {
    // 64 MiB with data at the start and at 40 MiB, holes elsewhere.
    const image = `${dir}/golden.img`;
    const f = Deno.openSync(image, { write: true, create: true });
    f.truncateSync(64 << 20);
    f.seekSync(0, Deno.SeekMode.Start);
    f.writeSync(new Uint8Array(8192).fill(0xaa));
    f.seekSync(40 << 20, Deno.SeekMode.Start);
    f.writeSync(new Uint8Array(4096).fill(0xbb));
    f.close();
    const golden = Deno.readFileSync(image);

    const disk = openDisk(parseDiskOption(`${image},snapshot=on`));
    try {
      assert.equal(disk.readOnly, false);
      assert.equal(disk.size, 64 << 20);
      assert.deepEqual(pread(disk.fd, 8192, 0), new Uint8Array(8192).fill(0xaa));
      assert.deepEqual(pread(disk.fd, 4096, 40 << 20), new Uint8Array(4096).fill(0xbb));
      assert.deepEqual(pread(disk.fd, 4096, 20 << 20), new Uint8Array(4096));
      // As sparse as the image: only its data extents were copied.
      assert.ok(fstat(disk.fd).blocks * 512 < 1 << 20, `${fstat(disk.fd).blocks} blocks`);
      // The guest's writes land in the copy.
      const w = new Uint8Array(4096).fill(0xcc);
      assert.equal(Number(libc.pwrite(disk.fd, w, 4096n, BigInt(1 << 20))), 4096);
      assert.deepEqual(pread(disk.fd, 4096, 1 << 20), w);
      // The copy has no name; the image is not locked: a writer may open it meanwhile.
      assert.deepEqual([...Deno.readDirSync(tmp)], []);
      openDisk(parseDiskOption(image)).close();
    } finally {
      disk.close();
    }
    assert.deepEqual(Deno.readFileSync(image), golden);
    // ro wins over snapshot: nothing to copy.
    const ro = openDisk(parseDiskOption(`${image},ro,snapshot=on`));
    assert.equal(ro.readOnly, true);
    ro.close();
    // No place for the copy: one line naming the image and TMPDIR.
    Deno.env.set("TMPDIR", `${dir}/missing`);
    assert.throws(
      () => openDisk(parseDiskOption(`${image},snapshot=on`)),
      /^Error: snapshot=on for .*golden\.img: no temporary file in .*missing \(ENOENT; set TMPDIR\)$/,
    );
    assert.throws(() => parseDiskOption(`${image},snapshot=yes`), /Invalid snapshot value yes/);
  } finally {
    if (before === undefined) Deno.env.delete("TMPDIR");
    else Deno.env.set("TMPDIR", before);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("data extents: holes are left out", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/f`;
    const f = Deno.openSync(path, { read: true, write: true, create: true });
    f.truncateSync(16 << 20);
    f.seekSync(8 << 20, Deno.SeekMode.Start);
    f.writeSync(new Uint8Array(4096).fill(1));
    f.close();
    const fd = openFile(path, O_RDONLY);
    const ext = dataExtents(fd, 16 << 20);
    closeFd(fd);
    assert.equal(ext.length, 1);
    assert.ok(
      ext[0][0] <= 8 << 20 && ext[0][0] + ext[0][1] >= (8 << 20) + 4096,
      JSON.stringify(ext),
    );
    assert.ok(ext[0][1] < 4 << 20, JSON.stringify(ext));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
