/**
 * Helpers of bench/vnc_bench.ts, in their own thread so they do not load
 * the main thread being measured: `paint` redraws the whole framebuffer
 * continuously (a guest playing video); `clients` runs RFB clients that
 * request and read updates as fast as they come, counting frames.
 *
 * @module
 */
// deno-lint-ignore no-explicit-any
const port = self as any;

async function readExactly(conn: Deno.Conn, buf: { b: Uint8Array; n: number }, want: number) {
  while (buf.n < want) {
    if (buf.b.length < want) {
      const nb = new Uint8Array(Math.max(want, buf.b.length * 2));
      nb.set(buf.b.subarray(0, buf.n));
      buf.b = nb;
    }
    const got = await conn.read(buf.b.subarray(buf.n));
    if (got === null) throw new Error("closed");
    buf.n += got;
  }
}

function consume(buf: { b: Uint8Array; n: number }, k: number) {
  buf.b.copyWithin(0, k, buf.n);
  buf.n -= k;
}

async function client(
  port: number,
  encoding: number,
  stop: Int32Array,
  frames: Int32Array,
  i: number,
) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = { b: new Uint8Array(1 << 20), n: 0 };
  await readExactly(conn, buf, 12);
  consume(buf, 12);
  await conn.write(new TextEncoder().encode("RFB 003.008\n"));
  await readExactly(conn, buf, 2);
  consume(buf, 2);
  await conn.write(new Uint8Array([1]));
  await readExactly(conn, buf, 4);
  consume(buf, 4);
  await conn.write(new Uint8Array([1]));
  await readExactly(conn, buf, 24);
  const v = new DataView(buf.b.buffer);
  const w = v.getUint16(0), h = v.getUint16(2), nameLen = v.getUint32(20);
  await readExactly(conn, buf, 24 + nameLen);
  consume(buf, 24 + nameLen);
  await conn.write(
    new Uint8Array([2, 0, 0, 1, ...new Uint8Array(new Int32Array([encoding]).buffer).reverse()]),
  );
  const req = new Uint8Array([3, 1, 0, 0, 0, 0, w >> 8, w & 0xff, h >> 8, h & 0xff]);
  while (Atomics.load(stop, 0) === 0) {
    await conn.write(req);
    await readExactly(conn, buf, 4);
    const n = new DataView(buf.b.buffer).getUint16(2);
    consume(buf, 4);
    for (let r = 0; r < n; r++) {
      await readExactly(conn, buf, 12);
      const d = new DataView(buf.b.buffer);
      const rw = d.getUint16(4), rh = d.getUint16(6), enc = d.getInt32(8);
      consume(buf, 12);
      let len = 0;
      if (enc === 0) len = rw * rh * 4;
      else if (enc === 16) {
        await readExactly(conn, buf, 4);
        len = new DataView(buf.b.buffer).getUint32(0);
        consume(buf, 4);
      } else if (enc === 1) len = 4;
      while (len > 0) {
        await readExactly(conn, buf, Math.min(len, 1 << 20));
        const k = Math.min(len, buf.n);
        consume(buf, k);
        len -= k;
      }
    }
    Atomics.add(frames, i, 1);
  }
  conn.close();
}

port.onmessage = async (e: MessageEvent) => {
  const m = e.data;
  const stop = new Int32Array(m.stop);
  if (m.t === "paint") {
    const px = new Uint32Array(m.fb);
    // One picture drawn once (bands of text-like pixels, gradients and
    // noise), then moved by one pixel per frame with a native copy: every
    // pixel changes each frame while the painter itself costs little CPU.
    for (let y = 0; y < m.h; y++) {
      const row = y * m.w;
      const band = (y >> 4) & 3;
      for (let x = 0; x < m.w; x++) {
        px[row + x] = band === 0
          ? 0x102030 + (x & 1)
          : band === 1
          ? (x % 9 < 3 ? 0xe0e0e0 : 0x000000)
          : band === 2
          ? ((x & 0xff) << 16) | ((y & 0xff) << 8)
          : (Math.imul(x, 2654435761) + y * 40503) >>> 8 & 0xffffff;
      }
    }
    while (Atomics.load(stop, 0) === 0) {
      const first = px[0];
      px.copyWithin(0, 1);
      px[px.length - 1] = first;
      await new Promise((r) => setTimeout(r, 16));
    }
    port.postMessage({ t: "done" });
  } else if (m.t === "clients") {
    const frames = new Int32Array(m.frames);
    await Promise.all(
      Array.from({ length: m.n }, (_, i) => client(m.port, m.encoding, stop, frames, i)),
    );
    port.postMessage({ t: "done" });
  }
};
