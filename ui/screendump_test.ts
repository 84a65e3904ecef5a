import assert from "node:assert/strict";
import { inflateSync } from "node:zlib";
import { LinearFramebuffer } from "../devices/display/linear_framebuffer.ts";
import { captureFramebuffer } from "./screenshot.ts";
import { encodePng, encodePpm, writeScreendump } from "./screendump.ts";

/** CRC-32 written out here, so the PNG's chunk CRCs are checked by another implementation. */
function crc32Reference(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

function drawn(width: number, height: number): LinearFramebuffer {
  const fb = LinearFramebuffer.create({ width, height });
  const px = fb.pixels();
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) px[y * width + x] = (x << 16) | (y << 8) | ((x + y) & 0xff);
  }
  return fb;
}

Deno.test("screenshot: the display's 0x00RRGGBB words become RGB rows in the guest's mode", () => {
  const fb = drawn(40, 30);
  try {
    const s = captureFramebuffer(fb);
    assert.equal(s.width, 40);
    assert.equal(s.height, 30);
    assert.equal(s.rgb.length, 40 * 30 * 3);
    const at = (
      x: number,
      y: number,
    ) => [...s.rgb.subarray((y * 40 + x) * 3, (y * 40 + x) * 3 + 3)];
    assert.deepEqual(at(0, 0), [0, 0, 0]);
    assert.deepEqual(at(39, 0), [39, 0, 39]);
    assert.deepEqual(at(5, 29), [5, 29, 34]);
    // A mode that does not fit video memory is refused before any read.
    const g = new Int32Array(fb.geometry);
    Atomics.store(g, 3, 1 << 28);
    assert.throws(() => captureFramebuffer(fb), RangeError);
  } finally {
    fb.close();
  }
});

Deno.test("screendump files: PPM as QEMU writes it, PNG that inflates to the same rows with valid CRCs", () => {
  const fb = drawn(33, 17);
  const dir = Deno.makeTempDirSync();
  try {
    const s = captureFramebuffer(fb);
    const ppm = encodePpm(s);
    const head = "P6\n33 17\n255\n";
    assert.equal(new TextDecoder().decode(ppm.subarray(0, head.length)), head);
    assert.deepEqual(ppm.subarray(head.length), s.rgb);

    const png = encodePng(s);
    assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
    const v = new DataView(png.buffer);
    const chunks: { type: string; data: Uint8Array }[] = [];
    for (let at = 8; at < png.length;) {
      const len = v.getUint32(at);
      const type = new TextDecoder().decode(png.subarray(at + 4, at + 8));
      assert.equal(
        v.getUint32(at + 8 + len),
        crc32Reference(png.subarray(at + 4, at + 8 + len)),
        type,
      );
      chunks.push({ type, data: png.subarray(at + 8, at + 8 + len) });
      at += 12 + len;
    }
    assert.deepEqual(chunks.map((c) => c.type), ["IHDR", "IDAT", "IEND"]);
    const ihdr = new DataView(chunks[0].data.buffer, chunks[0].data.byteOffset, 13);
    assert.deepEqual([ihdr.getUint32(0), ihdr.getUint32(4)], [33, 17]);
    assert.deepEqual([...chunks[0].data.subarray(8)], [8, 2, 0, 0, 0]);
    const raw = new Uint8Array(inflateSync(chunks[1].data));
    assert.equal(raw.length, (33 * 3 + 1) * 17);
    for (let y = 0; y < 17; y++) {
      assert.equal(raw[y * 100], 0, "filter type 0");
      assert.deepEqual(
        raw.subarray(y * 100 + 1, (y + 1) * 100),
        s.rgb.subarray(y * 99, (y + 1) * 99),
      );
    }

    writeScreendump(`${dir}/a.png`, s, "png");
    assert.deepEqual(Deno.readFileSync(`${dir}/a.png`), png);
    writeScreendump(`${dir}/a.png`, s, "ppm"); // truncates what was there
    assert.deepEqual(Deno.readFileSync(`${dir}/a.png`), ppm);
    assert.throws(() => writeScreendump(`${dir}/no/such/dir.ppm`, s, "ppm"), /ENOENT/);
  } finally {
    fb.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
