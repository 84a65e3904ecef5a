import assert from "node:assert/strict";
import { acceptKey, FrameDecoder, frameHeader, parseHandshake } from "./websocket.ts";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { VncServer } from "./server.ts";
import { drawScene, makeFb } from "./testdata/fb.ts";

const enc = new TextEncoder();

Deno.test("RFC 6455 accept key and handshake parsing", () => {
  assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  const req =
    "GET /websockify HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: binary, base64\r\n\r\nRFB";
  assert.equal(parseHandshake(enc.encode(req.slice(0, 40))).state, "incomplete");
  const h = parseHandshake(enc.encode(req));
  assert.equal(h.state, "done");
  if (h.state !== "done") return;
  const reply = new TextDecoder().decode(h.reply);
  assert.match(reply, /^HTTP\/1\.1 101 /);
  assert.match(reply, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
  assert.match(reply, /Sec-WebSocket-Protocol: binary\r\n/);
  assert.deepEqual([...h.rest], [...enc.encode("RFB")]);
  for (
    const bad of [
      "POST / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
      "GET / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: short\r\n\r\n",
    ]
  ) {
    const r = parseHandshake(enc.encode(bad));
    assert.equal(r.state, "error", bad);
  }
  assert.equal(parseHandshake(new Uint8Array(9000).fill(65)).state, "error");
});

function masked(opcode: number, payload: Uint8Array): Uint8Array {
  const mask = [1, 2, 3, 4];
  const h = frameHeader(payload.length, opcode);
  const out = new Uint8Array(h.length + 4 + payload.length);
  out.set(h);
  out[1] |= 0x80;
  out.set(mask, h.length);
  payload.forEach((b, i) => out[h.length + 4 + i] = b ^ mask[i & 3]);
  return out;
}

Deno.test("frame decoder: split frames, ping, close, unmasked and oversized frames", () => {
  const got: number[] = [], replies: Uint8Array[] = [], ends: string[] = [];
  const d = new FrameDecoder({
    data: (b) => got.push(...b),
    reply: (b) => replies.push(b),
    end: (r) => ends.push(r),
  });
  const big = new Uint8Array(70000).map((_, i) => i & 0xff);
  const stream = new Uint8Array([
    ...masked(2, new Uint8Array([1, 2, 3])),
    ...masked(9, enc.encode("hi")),
    ...masked(2, big),
  ]);
  for (let i = 0; i < stream.length; i += 777) d.feed(stream.subarray(i, i + 777));
  assert.equal(got.length, 3 + 70000);
  assert.deepEqual(got.slice(0, 5), [1, 2, 3, 0, 1]);
  assert.deepEqual([...replies[0]], [0x8a, 2, 0x68, 0x69]); // pong "hi"
  d.feed(masked(8, new Uint8Array(0)));
  assert.deepEqual(ends, ["client closed the WebSocket"]);
  const u: string[] = [];
  new FrameDecoder({ data() {}, reply() {}, end: (r) => u.push(r) }).feed(
    new Uint8Array([0x82, 1, 7]),
  );
  assert.deepEqual(u, ["unmasked client frame"]);
  const o: string[] = [];
  const huge = new Uint8Array([0x82, 0xff, 0, 0, 0, 0, 0x10, 0, 0, 0]);
  new FrameDecoder({ data() {}, reply() {}, end: (r) => o.push(r) }).feed(huge);
  assert.match(o[0], /frame of 268435456 bytes/);
});

Deno.test("an RFB session over the WebSocket transport with Deno's WebSocket client", async () => {
  const fb = makeFb(64, 48);
  drawScene(fb);
  const loop = new MainLoop();
  const running = loop.run();
  const server = await VncServer.start(loop, {
    listen: { host: "127.0.0.1", port: 0 },
    websocket: { host: "127.0.0.1", port: 0 },
    framebuffer: fb.source,
    log: () => {},
  });
  const ws = new WebSocket(`ws://127.0.0.1:${server.websocketPort}/`, ["binary"]);
  ws.binaryType = "arraybuffer";
  const inbox: number[] = [];
  let wake: (() => void) | null = null;
  ws.onmessage = (e) => {
    inbox.push(...new Uint8Array(e.data as ArrayBuffer));
    wake?.();
  };
  const read = async (n: number) => {
    const deadline = Date.now() + 5000;
    while (inbox.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} bytes`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 100);
      });
    }
    return inbox.splice(0, n);
  };
  try {
    await new Promise((r, j) => {
      ws.onopen = r;
      ws.onerror = j;
    });
    assert.equal(ws.protocol, "binary");
    assert.equal(new TextDecoder().decode(new Uint8Array(await read(12))), "RFB 003.008\n");
    ws.send(enc.encode("RFB 003.008\n"));
    assert.deepEqual(await read(2), [1, 1]);
    ws.send(new Uint8Array([1]));
    assert.deepEqual(await read(4), [0, 0, 0, 0]);
    ws.send(new Uint8Array([1]));
    const init = await read(24);
    assert.deepEqual(init.slice(0, 4), [0, 64, 0, 48]);
    await read(init[23]);
    ws.send(new Uint8Array([3, 0, 0, 0, 0, 0, 0, 64, 0, 48]));
    const head = await read(4 + 12);
    assert.equal(head[0], 0);
    const px = await read(64 * 48 * 4);
    assert.equal(px[0] | (px[1] << 8) | (px[2] << 16), fb.px[0] & 0xffffff);
  } finally {
    ws.close();
    await server.close();
    loop.stop();
    await running;
    loop.close();
  }
});
