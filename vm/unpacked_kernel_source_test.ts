import assert from "node:assert/strict";
import { pipeThrough } from "../tests/fixtures/_exec.ts";
import {
  kernelCacheFills,
  removeStaleTemporaries,
  unpackedKernelSource,
} from "./unpacked_kernel_source.ts";
import { hash53, sourceStamp } from "../sys/module_cache.ts";
import { DecompressError } from "../sys/decompress.ts";
import { bzImageWithPayload, makeElf, relocEntry, unpackedPayload } from "../boot/_test_images.ts";

const BASE = 0x100_0000;

function payload(): Uint8Array<ArrayBuffer> {
  const text = new Uint8Array(0x6000);
  for (let i = 0; i < text.length; i++) text[i] = (i * 7) & 0xff;
  const elf = makeElf(BigInt(BASE), [{ type: 1, paddr: BASE, data: text, memsz: 0x8000 }]);
  return unpackedPayload(elf, { r32: [relocEntry(BASE + 0x10)], r64: [relocEntry(BASE + 0x40)] });
}

// The test's own compressors, from the same libraries (no xz or zstd command needed).
const xzLib = Deno.dlopen("liblzma.so.5", {
  lzma_easy_buffer_encode: {
    parameters: ["u32", "i32", "pointer", "buffer", "usize", "buffer", "buffer", "usize"],
    result: "i32",
  },
}).symbols;
const zstdLib = Deno.dlopen("libzstd.so.1", {
  ZSTD_compress: { parameters: ["buffer", "usize", "buffer", "usize", "i32"], result: "usize" },
}).symbols;

/** xz with a CRC32 check, as the kernel's build makes its payload. */
function xzOf(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 4096);
  const pos = new BigUint64Array(1);
  const ret = xzLib.lzma_easy_buffer_encode(
    6,
    1, // LZMA_CHECK_CRC32
    null,
    data,
    BigInt(data.length),
    out,
    new Uint8Array(pos.buffer),
    BigInt(out.length),
  );
  assert.equal(ret, 0);
  return out.slice(0, Number(pos[0]));
}

function zstdOf(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 4096);
  const n = zstdLib.ZSTD_compress(out, BigInt(out.length), data, BigInt(data.length), 19);
  return out.slice(0, Number(n));
}

/** Runs `fn` with the VMM's cache under a fresh XDG_CACHE_HOME. */
async function withCache(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-kcache-" });
  const old = Deno.env.get("XDG_CACHE_HOME");
  Deno.env.set("XDG_CACHE_HOME", dir);
  try {
    await fn(dir);
  } finally {
    if (old === undefined) Deno.env.delete("XDG_CACHE_HOME");
    else Deno.env.set("XDG_CACHE_HOME", old);
    await Deno.remove(dir, { recursive: true });
  }
}

function contents(
  src: NonNullable<Awaited<ReturnType<typeof unpackedKernelSource>>>,
  size: number,
) {
  const out = new Uint8Array(size);
  src.copy(out, 0);
  return out;
}

/** The one entry in the kernel cache's directory. */
function onlyEntry(dir: string): string {
  const names = [...Deno.readDirSync(`${dir}/denovmm/kernels`)].map((e) => e.name);
  assert.equal(names.length, 1, names.join(" "));
  assert.match(names[0], /\.kernel$/);
  return `${dir}/denovmm/kernels/${names[0]}`;
}

Deno.test("a kernel the cache misses boots as it is while it is unpacked for the next boot, which reads the cache until the file changes", async () => {
  await withCache(async (dir) => {
    const bytes = payload();
    const xz = xzOf(bytes);
    const path = `${dir}/bzImage`;
    await Deno.writeFile(path, bzImageWithPayload(xz, bytes.length));
    const image = await Deno.readFile(path);

    // A miss: this boot runs the bzImage's own decompressor.
    assert.equal(await unpackedKernelSource(path, sourceStamp(path), image), undefined);
    // The fill works from its own copy: the caller frees the bzImage when its guest runs.
    const kept = image.slice();
    image.fill(0);
    await kernelCacheFills();
    image.set(kept);
    onlyEntry(dir);
    assert.equal(Deno.statSync(`${dir}/denovmm/kernels`).mode! & 0o777, 0o700);

    const second = (await unpackedKernelSource(path, sourceStamp(path), image))!;
    assert.equal(second.origin, "cache");
    assert.deepEqual(contents(second, bytes.length), bytes);
    assert.equal(second.relocations.relocs32.length, 1);
    assert.equal(second.relocations.relocs64.length, 1);
    // The lists as parsed from the payload itself (no cache: unpacked now).
    const now = (await unpackedKernelSource(path, undefined, image))!;
    assert.equal(now.origin, "xz");
    assert.deepEqual(second.layout, now.layout);
    assert.deepEqual(second.relocations, now.relocations);
    assert.deepEqual(contents(now, bytes.length), bytes);
    now.close();
    second.close();

    // Another stamp (the file was written again): a miss, filled again, replaced.
    await Deno.writeFile(path, image);
    assert.equal(await unpackedKernelSource(path, sourceStamp(path), image), undefined);
    // A second boot while the fill is in flight starts no other.
    assert.equal(await unpackedKernelSource(path, sourceStamp(path), image), undefined);
    await kernelCacheFills();
    onlyEntry(dir);
    const third = (await unpackedKernelSource(path, sourceStamp(path), image))!;
    assert.equal(third.origin, "cache");
    third.close();

    // Switched off: the bzImage boots as it is.
    Deno.env.set("DENOVMM_KERNEL_UNPACK", "0");
    try {
      assert.equal(await unpackedKernelSource(path, sourceStamp(path), image), undefined);
    } finally {
      Deno.env.delete("DENOVMM_KERNEL_UNPACK");
    }
  });
});

Deno.test("zstd, LZ4 and gzip payloads unpack too; bzip2 and unknown ones are left to the guest", async () => {
  await withCache(async (dir) => {
    const bytes = payload();
    // No stamp (bytes not read from a file): no cache, unpacked for this boot.
    const now = (data: Uint8Array, size = bytes.length) =>
      unpackedKernelSource(`${dir}/k`, undefined, bzImageWithPayload(data, size));
    const z = (await now(zstdOf(bytes)))!;
    assert.equal(z.origin, "zstd");
    assert.deepEqual(contents(z, bytes.length), bytes);
    z.close();
    // LZ4 legacy frames, as the kernel's build makes them (`lz4 -l`).
    const l = (await now(await pipeThrough("lz4", ["-l", "-12", "-c"], bytes)))!;
    assert.equal(l.origin, "lz4");
    assert.deepEqual(contents(l, bytes.length), bytes);
    l.close();
    // gzip, as the kernel's build makes it (`gzip -n -f -9`).
    const g = (await now(await pipeThrough("gzip", ["-n", "-9", "-c"], bytes)))!;
    assert.equal(g.origin, "gzip");
    assert.deepEqual(contents(g, bytes.length), bytes);
    g.close();
    assert.equal(await now(await pipeThrough("bzip2", ["-9", "-c"], bytes)), undefined);
    // Not a bzImage at all (an ELF, a flat image): nothing to unpack.
    assert.equal(await unpackedKernelSource(`${dir}/e`, undefined, bytes), undefined);
    assert.equal(await unpackedKernelSource(`${dir}/e`, "s", bytes), undefined);
    await kernelCacheFills();
    assert.equal([...Deno.readDirSync(dir)].length, 0, "nothing cached");
  });
});

Deno.test("a corrupt payload or one of another size than declared is an error, not a boot; in the background, no entry", async () => {
  await withCache(async (dir) => {
    const bytes = payload();
    const xz = xzOf(bytes);
    const corrupt = xz.slice();
    corrupt[corrupt.length >> 1] ^= 0xff;
    for (
      const [name, image] of [
        ["c", bzImageWithPayload(corrupt, bytes.length)],
        ["d", bzImageWithPayload(xz, bytes.length + 4)],
      ] as const
    ) {
      await assert.rejects(
        unpackedKernelSource(`${dir}/${name}`, undefined, image),
        DecompressError,
      );
      // A miss leaves it to the guest; the fill fails with one line and stores nothing.
      const errors: unknown[] = [];
      const error = console.error;
      console.error = (...a: unknown[]) => errors.push(a.join(" "));
      try {
        assert.equal(await unpackedKernelSource(`${dir}/${name}`, "s", image), undefined);
        await kernelCacheFills();
      } finally {
        console.error = error;
      }
      assert.equal(errors.length, 1);
      assert.match(String(errors[0]), /could not unpack the kernel .* for the cache \(xz: /);
    }
    assert.deepEqual([...Deno.readDirSync(`${dir}/denovmm/kernels`)], []);
  });
});

Deno.test("the cache keeps the payload's zero runs; a header with malformed runs is a miss", async () => {
  await withCache(async (dir) => {
    // Data, 128 KiB of zeros, data, then a zero tail: runs [a, b) and [c, end).
    const text = new Uint8Array(0x40000);
    text.fill(0x5a, 0, 0x3000);
    text.fill(0x5a, 0x23000, 0x24000);
    const elf = makeElf(BigInt(BASE), [{ type: 1, paddr: BASE, data: text, memsz: text.length }]);
    const bytes = unpackedPayload(elf, { r32: [relocEntry(BASE + 0x10)], r64: [] });
    const path = `${dir}/bzImage`;
    await Deno.writeFile(path, bzImageWithPayload(xzOf(bytes), bytes.length));
    const image = await Deno.readFile(path);

    assert.equal(await unpackedKernelSource(path, sourceStamp(path), image), undefined);
    await kernelCacheFills();
    const first = (await unpackedKernelSource(path, sourceStamp(path), image))!;
    assert.equal(first.origin, "cache");
    assert.ok(first.zeroRuns.length >= 2, JSON.stringify(first.zeroRuns));
    for (const r of first.zeroRuns) {
      assert.equal(r.start % 4096, 0);
      assert.ok(bytes.subarray(r.start, r.end).every((b) => b === 0));
    }
    assert.deepEqual(contents(first, bytes.length), bytes);
    first.close();

    // A run past the end (a damaged entry): a miss, not trusted, filled again.
    const entry = onlyEntry(dir);
    const raw = await Deno.readFile(entry);
    const line = new TextDecoder().decode(raw.subarray(0, raw.indexOf(10)));
    // ... <zero runs> <relocation list lengths>
    assert.match(line, / \d+\+\d+(,\d+\+\d+)* 1,0,0$/);
    const bad = line.replace(/ [^ ]+( [^ ]+)$/, ` 0+${bytes.length + 4096}$1`);
    raw.fill(0, 0, 4096);
    raw.set(new TextEncoder().encode(`${bad}\n`));
    await Deno.writeFile(entry, raw);
    assert.equal(await unpackedKernelSource(path, sourceStamp(path), image), undefined);
    await kernelCacheFills();
    const again = (await unpackedKernelSource(path, sourceStamp(path), image))!;
    assert.equal(again.origin, "cache");
    assert.deepEqual(again.zeroRuns, first.zeroRuns);
    again.close();
  });
});

Deno.test("temporary files of writers no longer alive are removed; a live writer's and entries are kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-cache-stale-" });
  try {
    // A pid above any pid_max (2^22) belongs to no process.
    const dead = `abc.kernel.${2 ** 23 + 7}.x1y2.tmp`;
    const mine = `abc.kernel.${Deno.pid}.q9.tmp`;
    const init = "abc.kernel.1.z.tmp"; // pid 1 lives
    for (const n of [dead, mine, init, "abc.kernel", "notes.tmp"]) {
      await Deno.writeFile(`${dir}/${n}`, new Uint8Array(1));
    }
    assert.equal(removeStaleTemporaries(dir), 1);
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(left, [init, mine, "abc.kernel", "notes.tmp"].sort());
    assert.equal(removeStaleTemporaries(`${dir}/missing`), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the kernel cache keeps to DENOVMM_KERNEL_CACHE_SIZE: the entries least recently booted go; 0 keeps none", async () => {
  await withCache(async (dir) => {
    const bytes = payload();
    const image = bzImageWithPayload(xzOf(bytes), bytes.length);
    const kernels = `${dir}/denovmm/kernels`;
    const entryOf = (name: string) => `${kernels}/${hash53(`${dir}/${name}`)}.kernel`;
    const boot = async (name: string) => {
      const path = `${dir}/${name}`;
      try {
        Deno.statSync(path);
      } catch {
        await Deno.writeFile(path, image);
      }
      const src = await unpackedKernelSource(path, sourceStamp(path), image);
      await kernelCacheFills();
      src?.close();
      return src?.origin;
    };
    const old = Deno.env.get("DENOVMM_KERNEL_CACHE_SIZE");
    try {
      assert.equal(await boot("a"), undefined); // a miss: filled
      const entrySize = Deno.statSync(entryOf("a")).size;
      Deno.env.set("DENOVMM_KERNEL_CACHE_SIZE", `${2 * entrySize}b`);
      assert.equal(await boot("b"), undefined);
      Deno.utimeSync(entryOf("a"), 1000, 1000);
      Deno.utimeSync(entryOf("b"), 2000, 2000);
      // a is booted again (from the cache): now b is the one least recently used.
      assert.equal(await boot("a"), "cache");
      assert.equal(await boot("c"), undefined);
      const names = () => [...Deno.readDirSync(kernels)].map((e) => e.name).sort();
      assert.deepEqual(
        names(),
        [entryOf("a"), entryOf("c")].map((p) => p.slice(kernels.length + 1)).sort(),
      );
      // (File times are coarse: a hit and a fill a moment apart may share one.)
      Deno.utimeSync(entryOf("a"), 3000, 3000);
      Deno.utimeSync(entryOf("c"), 4000, 4000);
      assert.equal(await boot("b"), undefined); // b is gone: a miss again, a goes
      assert.equal(await boot("c"), "cache");
      assert.equal(names().length, 2);

      // Not a size: named once, the default bound kept.
      Deno.env.set("DENOVMM_KERNEL_CACHE_SIZE", "lots");
      const lines: string[] = [];
      const error = console.error;
      console.error = (...a: unknown[]) => lines.push(a.join(" "));
      try {
        assert.equal(await boot("c"), "cache");
        assert.equal(await boot("b"), "cache");
      } finally {
        console.error = error;
      }
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], /DENOVMM_KERNEL_CACHE_SIZE="lots" is not a size/);

      // 0: no entry kept (unpacked before each boot), those there removed.
      Deno.env.set("DENOVMM_KERNEL_CACHE_SIZE", "0");
      assert.equal(await boot("a"), "xz");
      assert.deepEqual(names(), []);
    } finally {
      if (old === undefined) Deno.env.delete("DENOVMM_KERNEL_CACHE_SIZE");
      else Deno.env.set("DENOVMM_KERNEL_CACHE_SIZE", old);
    }
  });
});
