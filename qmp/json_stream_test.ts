import assert from "node:assert/strict";
import { JsonStreamer, type JsonStreamItem } from "./json_stream.ts";

const enc = new TextEncoder();

function texts(items: JsonStreamItem[]): string[] {
  return items.map((i) => i.kind === "text" ? i.text : `<${i.kind}>`);
}

Deno.test("JsonStreamer splits concatenated objects, with or without newlines", () => {
  const s = new JsonStreamer();
  assert.deepEqual(texts(s.push(enc.encode('{"a":1}{"b":[2,{"c":3}]}\n  {"d":4}\r\n'))), [
    '{"a":1}',
    '{"b":[2,{"c":3}]}',
    '{"d":4}',
  ]);
});

Deno.test("JsonStreamer ignores brackets and quotes inside strings", () => {
  const s = new JsonStreamer();
  const t = '{"x":"}{]\\"[","y":\'}\'}';
  assert.deepEqual(texts(s.push(enc.encode(t))), [t]);
});

Deno.test("JsonStreamer joins a message split across reads, byte by byte", () => {
  const s = new JsonStreamer();
  const msg = '{"execute":"query-status","id":"é{"}';
  const bytes = enc.encode(msg + "garbage {}");
  const out: JsonStreamItem[] = [];
  for (const b of bytes) out.push(...s.push(new Uint8Array([b])));
  assert.deepEqual(texts(out), [msg, "garbage", "{}"]);
});

Deno.test("JsonStreamer makes stray words texts of their own", () => {
  const s = new JsonStreamer();
  assert.deepEqual(texts(s.push(enc.encode('hello 42 "s"{"a":1}\n'))), [
    "hello",
    "42",
    '"s"',
    '{"a":1}',
  ]);
});

Deno.test("JsonStreamer reports a message over the size limit once, then stops", () => {
  const s = new JsonStreamer({ maxBytes: 64 });
  const first = s.push(enc.encode('{"a":"' + "x".repeat(40)));
  assert.deepEqual(texts(first), []);
  assert.deepEqual(texts(s.push(enc.encode("x".repeat(40)))), ["<tooLarge>"]);
  assert.equal(s.failed, true);
  assert.deepEqual(texts(s.push(enc.encode('"}{"b":1}'))), []);
  // A whole oversized message inside one read is caught too.
  const t = new JsonStreamer({ maxBytes: 16 });
  assert.deepEqual(texts(t.push(enc.encode(`{"a":"${"y".repeat(30)}"}`))), ["<tooLarge>"]);
});

Deno.test("JsonStreamer reports nesting over the depth limit", () => {
  const s = new JsonStreamer({ maxDepth: 8 });
  assert.deepEqual(texts(s.push(enc.encode("[".repeat(9)))), ["<tooDeep>"]);
  const ok = new JsonStreamer({ maxDepth: 8 });
  assert.deepEqual(texts(ok.push(enc.encode("[".repeat(8) + "]".repeat(8)))), [
    "[".repeat(8) + "]".repeat(8),
  ]);
});
