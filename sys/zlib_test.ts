import assert from "node:assert/strict";
import { inflateSync } from "node:zlib";
import { Deflater, Inflater } from "./zlib.ts";

Deno.test("one deflate stream across messages: each chunk decodes on its own flush point", () => {
  const d = new Deflater(6);
  const inf = new Inflater();
  const noise = new Uint8Array(5000);
  let x = 7;
  for (let i = 0; i < noise.length; i++) noise[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  const msgs = [noise, noise.slice(), new Uint8Array(300).fill(3)];
  const chunks: Uint8Array[] = [];
  for (const m of msgs) {
    const c = d.deflate(m).slice();
    chunks.push(c);
    assert.deepEqual(inf.inflate(c, m.length), m);
  }
  // The second message repeats the first: the shared dictionary makes it tiny.
  assert.ok(chunks[1].length < chunks[0].length / 2, `${chunks[1].length} vs ${chunks[0].length}`);
  // The concatenation is one zlib stream (node's inflate agrees, cross-check).
  const all = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let o = 0;
  for (const c of chunks) all.set(c, (o += c.length) - c.length);
  assert.equal(inflateSync(all, { finishFlush: 2 }).length, 10300);
  d.close();
  inf.close();
});

Deno.test("incompressible input larger than the internal buffer", () => {
  const d = new Deflater(1);
  const data = new Uint8Array(300_000);
  let x = 1;
  for (let i = 0; i < data.length; i++) data[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  const c = d.deflate(data).slice();
  assert.deepEqual(new Inflater().inflate(c, data.length), data);
  d.close();
});

Deno.test("corrupt input is an error, not a crash", () => {
  assert.throws(() => new Inflater().inflate(new Uint8Array([1, 2, 3, 4]), 10), /inflate/);
});
