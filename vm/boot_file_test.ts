// The kernel and initrd named by path live outside V8's heap: release()
// gives their pages back at once (a V8 buffer would stay resident until a
// full GC), and the next read of the bytes reads the file again (a reboot).
import assert from "node:assert/strict";
import { BootFile } from "./boot_file.ts";
import { releaseBootFiles, resolveConfig } from "./resolve.ts";
import { debianKernel } from "../tests/fixtures/debian.ts";

function rssKib(): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
}

Deno.test("release gives the pages back; the bytes are read again after it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-boot-file-" });
  try {
    const path = `${dir}/blob`;
    const size = 24 << 20;
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i += 4096) data[i] = (i >> 12) & 0xff;
    data[size - 1] = 0x5a;
    Deno.writeFileSync(path, data);
    const before = rssKib();
    const f = new BootFile(path, 2 ** 31);
    const held = rssKib();
    assert.ok(held - before > 20 * 1024, `reading holds the file: +${held - before} KiB`);
    const view = f.bytes;
    assert.equal(view.length, size);
    assert.equal(view[4096 * 7], 7);
    assert.equal(view[size - 1], 0x5a);
    f.release();
    assert.equal(f.held, false);
    const after = rssKib();
    assert.ok(held - after > 20 * 1024, `release gives the pages back: -${held - after} KiB`);
    // An old view reads zeros, not freed memory.
    assert.equal(view[size - 1], 0);
    // The file changed meanwhile (a new kernel for the reboot): read again.
    data[size - 1] = 0xa5;
    Deno.writeFileSync(path, data);
    assert.equal(f.bytes[size - 1], 0xa5);
    assert.equal(f.reads, 2);
    // A larger file gets a mapping that fits.
    Deno.writeFileSync(path, new Uint8Array(size + 4097).fill(3));
    f.release();
    assert.equal(f.bytes.length, size + 4097);
    assert.equal(f.bytes[size + 4096], 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a resolved config's kernel and initrd are read again after releaseBootFiles", async () => {
  const kernel = (await debianKernel("amd64")).vmlinuz;
  const dir = await Deno.makeTempDir({ prefix: "denovmm-boot-file-" });
  try {
    const initrd = `${dir}/initrd`;
    Deno.writeFileSync(initrd, new Uint8Array([1, 2, 3]));
    const rc = resolveConfig({ kernel, initrd });
    const k = rc.kernel!;
    const header = k.slice(0x202, 0x206); // "HdrS"
    assert.equal(new TextDecoder().decode(header), "HdrS");
    assert.equal(rc.bootFiles.length, 2);
    releaseBootFiles(rc);
    assert.ok(rc.bootFiles.every((f) => !f.held));
    assert.deepEqual(rc.kernel!.slice(0x202, 0x206), header);
    assert.deepEqual([...rc.initrd!], [1, 2, 3]);
    assert.ok(rc.bootFiles.every((f) => f.held && f.reads === 2));
    // Bytes given by the caller are the caller's: nothing to release.
    const given = resolveConfig({ kernel: rc.kernel!.slice() });
    assert.equal(given.bootFiles.length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a configuration refused after the kernel was read unmaps it", async () => {
  const kernel = (await debianKernel("amd64")).vmlinuz;
  const vmSizeKib = () =>
    Number(/^VmSize:\s+(\d+) kB/m.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
  const before = vmSizeKib();
  for (let i = 0; i < 20; i++) {
    assert.throws(() => resolveConfig({ kernel, initrd: "/nonexistent/initrd" }), /initrd/);
  }
  // Without the unmap, each refused configuration left its 8 MiB mapping behind.
  const grown = vmSizeKib() - before;
  assert.ok(grown < 40 * 1024, `address space grew ${grown} KiB`);
});
