// The kernel and initrd read ahead on Deno's pool: a BootFile takes the
// bytes only when they are the file's as it is now; anything odd about the
// file drops the read-ahead and leaves the BootFile to read (and report).
import assert from "node:assert/strict";
import { BootFile } from "./boot_file.ts";
import {
  dropReadAheads,
  readAhead,
  readAheadOverlaps,
  settleReadAheads,
  takeReadAhead,
} from "./read_ahead.ts";
import { availableCpus } from "../sys/sched.ts";
import { bootFilesNamed } from "../machine/early_start.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-read-ahead-" });
  try {
    await fn(dir);
  } finally {
    dropReadAheads();
    await Deno.remove(dir, { recursive: true });
  }
}

function pattern(size: number, seed: number): Uint8Array {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

Deno.test("a BootFile takes the bytes read ahead, once", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/kernel`;
    const data = pattern(3 * 4096 + 123, 1);
    Deno.writeFileSync(path, data);
    assert.equal(readAhead(path), true);
    assert.equal(readAhead(path), false, "one read-ahead per path");
    await settleReadAheads();
    const f = new BootFile(path, 2 ** 31);
    assert.equal(f.reads, 1);
    assert.deepEqual(f.bytes, data);
    assert.ok(f.stamp !== undefined);
    // Handed over once: the next BootFile for the path reads the file.
    assert.equal(takeReadAhead(path, 2 ** 31), undefined);
    const g = new BootFile(path, 2 ** 31);
    assert.deepEqual(g.bytes, data);
    // Released and read again (a reboot): the adopted mapping is reused.
    f.release();
    assert.deepEqual(f.bytes, data);
    assert.equal(f.reads, 2);
    f.close();
    g.close();
  });
});

Deno.test("a file changed after its read-ahead is read again, not taken stale", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/initrd`;
    Deno.writeFileSync(path, pattern(10_000, 2));
    assert.equal(readAhead(path), true);
    await settleReadAheads();
    const now = pattern(10_001, 3);
    Deno.writeFileSync(path, now);
    assert.equal(takeReadAhead(path, 2 ** 31), undefined);
    const f = new BootFile(path, 2 ** 31);
    assert.deepEqual(f.bytes, now);
    f.close();
  });
});

Deno.test("what is not a readable regular file is left to the BootFile, which reports it", async () => {
  await withDir(async (dir) => {
    assert.equal(readAhead(`${dir}/missing`), false);
    assert.equal(readAhead(dir), false);
    assert.equal(readAhead(""), false);
    const empty = `${dir}/empty`;
    Deno.writeFileSync(empty, new Uint8Array());
    assert.equal(readAhead(empty), false);
    // A FIFO: neither the read-ahead nor its open may wait for a writer.
    const fifo = `${dir}/fifo`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(mk.code, 0);
    assert.equal(readAhead(fifo), false);
    await settleReadAheads();
    assert.throws(() => new BootFile(`${dir}/missing`, 2 ** 31), /ENOENT|No such file/);
    assert.throws(() => new BootFile(fifo, 2 ** 31), /FIFO|fifo/i);
  });
});

Deno.test("a read-ahead larger than the taker's limit is dropped; the limit is reported", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/big`;
    Deno.writeFileSync(path, pattern(8192, 4));
    assert.equal(readAhead(path), true);
    await settleReadAheads();
    assert.equal(takeReadAhead(path, 4096), undefined);
    assert.throws(() => new BootFile(path, 4096), RangeError);
    // Dropped, not kept for a later taker with a larger limit.
    assert.equal(takeReadAhead(path, 2 ** 31), undefined);
  });
});

Deno.test("dropReadAheads unmaps what nobody took", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/k`;
    Deno.writeFileSync(path, pattern(4096, 5));
    assert.equal(readAhead(path), true);
    await settleReadAheads();
    dropReadAheads();
    assert.equal(takeReadAhead(path, 2 ** 31), undefined);
    // Gone from the table: the path can be read ahead again.
    assert.equal(readAhead(path), true);
  });
});

Deno.test("bootFilesNamed finds the kernel and initrd as machine/cli.ts spells them", () => {
  assert.deepEqual(bootFilesNamed(["-kernel", "bz", "--initrd=rd", "-m", "1G"]), ["bz", "rd"]);
  assert.deepEqual(bootFilesNamed(["--kernel", "a b", "-initrd", "x=y"]), ["a b", "x=y"]);
  // QEMU's single-dash spellings take no '=' (machine/cli.ts neither); a
  // flag at the end names nothing.
  assert.deepEqual(bootFilesNamed(["-kernel=bz", "--append", "x", "--initrd"]), []);
  // It does not know which other flags take values: an --append of
  // "--kernel" makes it name the wrong file, which costs only a read-ahead
  // nobody takes (the real parse finds the kernel).
  assert.deepEqual(bootFilesNamed(["--append", "--kernel", "--kernel", "k"]), ["--kernel"]);
});

Deno.test("reading ahead only where it can overlap: more than one CPU available", async () => {
  assert.equal(readAheadOverlaps(), availableCpus().length > 1);
  // Pinned to one CPU (taskset, where it is installed), a process says no.
  const probe = `import { readAheadOverlaps } from ${
    JSON.stringify(new URL("./read_ahead.ts", import.meta.url).href)
  };
console.log(readAheadOverlaps());`;
  try {
    const out = await new Deno.Command("taskset", {
      args: ["-c", "0", Deno.execPath(), "eval", "--no-check", probe],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "false");
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
});
