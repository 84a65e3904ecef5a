import assert from "node:assert/strict";
import { EncoderCore } from "./encoder_core.ts";
import { drawScene, makeFb } from "./testdata/fb.ts";

function rawPixels(update: Uint8Array): number {
  // FramebufferUpdate header (4) + one Raw rectangle per dirty tile run: count rect headers.
  const v = new DataView(update.buffer, update.byteOffset, update.length);
  return v.getUint16(2);
}

Deno.test("change detection: only changed tiles are sent; a still screen sends nothing", () => {
  const fb = makeFb(256, 128);
  drawScene(fb);
  const core = new EncoderCore({ memory: fb.source.sab!, geometry: fb.geometry });
  core.addClient(1);
  core.request(1, false, { x: 0, y: 0, w: 256, h: 128 });
  assert.equal(core.refresh().changedTiles, 8);
  assert.ok(core.takeUpdate(1));
  core.request(1, true, { x: 0, y: 0, w: 256, h: 128 });
  assert.equal(core.refresh().changedTiles, 0);
  assert.equal(core.takeUpdate(1), null); // nothing changed: the request waits
  fb.px[70 * fb.stride + 200] ^= 0xffffff; // one pixel in tile (3, 1)
  assert.equal(core.refresh().changedTiles, 1);
  const u = core.takeUpdate(1)!;
  assert.equal(rawPixels(u), 1);
  const v = new DataView(u.buffer, u.byteOffset);
  assert.deepEqual([v.getUint16(4), v.getUint16(6), v.getUint16(8), v.getUint16(10)], [
    192,
    64,
    64,
    64,
  ]);
  core.close();
});

Deno.test("setView(null) stops reading the old memory; a new view resends everything", () => {
  const a = makeFb(128, 64), b = makeFb(128, 64);
  drawScene(a, 1);
  drawScene(b, 2);
  const core = new EncoderCore({ memory: a.source.sab!, geometry: a.geometry });
  core.addClient(1);
  core.request(1, false, { x: 0, y: 0, w: 128, h: 64 });
  core.refresh();
  core.takeUpdate(1);
  core.setView(null);
  a.px.fill(0x123456); // would be a change, but the memory is no longer looked at
  core.request(1, true, { x: 0, y: 0, w: 128, h: 64 });
  assert.deepEqual(core.refresh(), { changedTiles: 0, resized: false });
  assert.equal(core.takeUpdate(1), null);
  core.setView({ memory: b.source.sab!, geometry: b.geometry });
  core.refresh();
  const u = core.takeUpdate(1)!;
  // Two tiles, one rectangle (a run of two), raw pixels from b.
  assert.equal(rawPixels(u), 1);
  const px = new Uint32Array(u.slice(16).buffer);
  assert.equal(px[0] & 0xffffff, b.px[0] & 0xffffff);
  core.close();
});
