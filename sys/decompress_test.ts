import assert from "node:assert/strict";
import { pipeThrough } from "../tests/fixtures/_exec.ts";
import { decompressAvailable, DecompressError, decompressInto } from "./decompress.ts";

/** The lz4 command's legacy frames (`lz4 -l`), as the kernel's build makes its payload. */
function lz4Legacy(data: Uint8Array): Promise<Uint8Array> {
  return pipeThrough("lz4", ["-l", "-9", "-c"], data);
}

/** Bytes that compress but not to nothing: a 20 MiB mix spanning three 8 MiB blocks. */
function sample(size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = 12345;
  for (let i = 0; i < size; i++) {
    if ((i & 0xfff) < 0x800) out[i] = i & 0xff;
    else {
      x = (x * 1103515245 + 12345) >>> 0;
      out[i] = x >>> 24;
    }
  }
  return out;
}

Deno.test("lz4 legacy frames unpack across 8 MiB blocks and concatenated frames", async () => {
  assert.ok(decompressAvailable("lz4"));
  const data = sample(20 << 20);
  const lz = await lz4Legacy(data);
  // Three blocks: 8 + 8 + 4 MiB.
  const out = new Uint8Array(data.length);
  await decompressInto("lz4", lz, out);
  assert.ok(out.every((b, i) => b === data[i]));

  // A second frame after the first (the magic again), as decompress_unlz4 accepts.
  const tail = sample(3 << 20).map((b) => b ^ 0x5a);
  const two = new Uint8Array([...lz, ...await lz4Legacy(tail)]);
  const out2 = new Uint8Array(data.length + tail.length);
  await decompressInto("lz4", two, out2);
  assert.ok(out2.subarray(data.length).every((b, i) => b === tail[i]));
});

Deno.test("damaged lz4 input is a DecompressError naming it, never a write past the output", async () => {
  const data = sample(1 << 20);
  const lz = await lz4Legacy(data);
  const tryIt = async (input: Uint8Array, size = data.length) => {
    const out = new Uint8Array(size + 64);
    out.fill(0xee, size);
    await assert.rejects(decompressInto("lz4", input, out.subarray(0, size)), DecompressError);
    // Nothing past the capacity given.
    assert.ok(out.subarray(size).every((b) => b === 0xee));
  };
  await tryIt(lz.slice(4)); // no magic
  await tryIt(lz.slice(0, lz.length - 10)); // block cut short: its length runs past the input
  await tryIt(lz.slice(0, 6)); // a block length cut short
  const long = lz.slice();
  new DataView(long.buffer).setUint32(4, 0x7fff_ffff, true);
  await tryIt(long); // a block length beyond any block
  const corrupt = lz.slice();
  corrupt.fill(0xff, 8, 40); // a literal run's length that runs past the input
  await tryIt(corrupt);
  await tryIt(lz, data.length - 1); // more than declared
  await tryIt(lz, data.length + 1); // less than declared
});

Deno.test("a gzip payload inflates through libz; damage or another size is a DecompressError", async () => {
  assert.ok(decompressAvailable("gzip"));
  const data = sample(12 << 20);
  const gz = await pipeThrough("gzip", ["-n", "-9", "-c"], data);
  const out = new Uint8Array(data.length);
  await decompressInto("gzip", gz, out);
  assert.ok(out.every((b, i) => b === data[i]));

  const tryIt = async (input: Uint8Array, size: number, why: RegExp) => {
    const room = new Uint8Array(size + 64).fill(0xee);
    await assert.rejects(decompressInto("gzip", input, room.subarray(0, size)), why);
    assert.ok(room.subarray(size).every((b) => b === 0xee), "nothing past the output");
  };
  await tryIt(gz, data.length - 1, /gzip: more than/);
  await tryIt(gz, data.length + 1, /gzip: .*cut short|bytes instead/);
  await tryIt(gz.slice(0, gz.length >> 1), data.length, /gzip: .*cut short/);
  const corrupt = gz.slice();
  corrupt.fill(0xff, 100, 140);
  await tryIt(corrupt, data.length, /gzip: corrupt|gzip: more than|cut short/);
  await tryIt(new Uint8Array([...gz, 1, 2, 3]), data.length, /gzip: 3 bytes after/);
  await assert.rejects(
    decompressInto("gzip", gz, new Uint8Array(data.length - 1)),
    DecompressError,
  );
});

Deno.test("the library works on Deno's pool: the caller's event loop turns meanwhile", async () => {
  // A call that held the calling thread would return only when the work is
  // done; on the pool it returns at once and the work settles later. (A
  // zero timer armed before it was the first check: under load the op's
  // completion could be handled before that timer in the same turn.)
  const data = sample(12 << 20);
  const gz = await pipeThrough("gzip", ["-n", "-1", "-c"], data);
  const lz = await lz4Legacy(data);
  for (const [format, input] of [["gzip", gz], ["lz4", lz]] as const) {
    // A first call binds the library's symbols (a few ms, once per process).
    await decompressInto(format, input, new Uint8Array(data.length));
    const out = new Uint8Array(data.length);
    const t0 = performance.now();
    const pending = decompressInto(format, input, out);
    const callMs = performance.now() - t0;
    let turned = false;
    setTimeout(() => turned = true, 0);
    await pending;
    const totalMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 0));
    assert.ok(turned, `${format}: the event loop turns after the call`);
    assert.ok(
      callMs < totalMs / 2,
      `${format}: the call held its thread ${callMs.toFixed(1)} of ${totalMs.toFixed(1)} ms`,
    );
    assert.ok(out.every((b, i) => b === data[i]));
  }
});
