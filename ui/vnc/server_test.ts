import assert from "node:assert/strict";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { VncServer, type VncServerOptions } from "./server.ts";
import { expectPixel, NATIVE, RfbTestClient, RGB565_BE, type TestFormat } from "./_test_client.ts";
import { drawScene, makeFb, resize, type TestFb, visible } from "./testdata/fb.ts";

interface Harness {
  loop: MainLoop;
  server: VncServer;
  fb: TestFb;
  logs: string[];
  keys: [boolean, number][];
  done: () => Promise<void>;
}

async function harness(
  fb: TestFb,
  options: Partial<VncServerOptions> = {},
): Promise<Harness> {
  const loop = new MainLoop();
  const running = loop.run();
  const logs: string[] = [];
  const keys: [boolean, number][] = [];
  const server = await VncServer.start(loop, {
    listen: { host: "127.0.0.1", port: 0 },
    framebuffer: fb.source,
    log: (l) => logs.push(l),
    input: { key: (d, k) => keys.push([d, k]) },
    refreshMs: 10,
    ...options,
  });
  return {
    loop,
    server,
    fb,
    logs,
    keys,
    async done() {
      await server.close();
      loop.stop();
      await running;
      loop.close();
    },
  };
}

function assertScreen(c: RfbTestClient, fb: TestFb, f: TestFormat = NATIVE): void {
  assert.equal(c.width, fb.width);
  assert.equal(c.height, fb.height);
  const want = visible(fb);
  let bad = 0, first = -1;
  for (let i = 0; i < want.length; i++) {
    if (c.screen[i] !== expectPixel(f, want[i])) {
      bad++;
      if (first < 0) first = i;
    }
  }
  assert.equal(
    bad,
    0,
    bad
      ? `${bad} pixels differ; first at (${first % fb.width},${Math.floor(first / fb.width)}): ` +
        `got ${c.screen[first].toString(16)} want ${expectPixel(f, want[first]).toString(16)}`
      : "",
  );
}

/** Requests incremental updates until the client's screen matches (or the deadline). */
async function settle(c: RfbTestClient, fb: TestFb, f: TestFormat = NATIVE, encs?: number[]) {
  const deadline = Date.now() + 8000;
  for (;;) {
    try {
      assertScreen(c, fb, f);
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await c.requestUpdate(true);
    await c.message();
    for (const e of c.seen) assert.ok(!encs || encs.includes(e), `unexpected encoding ${e}`);
  }
}

Deno.test("handshake with security None, ServerInit, then a full Raw update equals the framebuffer", async () => {
  const fb = makeFb(200, 130);
  drawScene(fb);
  const h = await harness(fb, { name: "test-desk" });
  const c = await RfbTestClient.connect(h.server.port);
  try {
    assert.equal(await c.handshake(), 0);
    assert.equal(c.width, 200);
    assert.equal(c.height, 130);
    assert.equal(c.name, "test-desk");
    await c.requestUpdate(false);
    await c.message();
    assert.deepEqual([...new Set(c.seen)], [0]);
    assertScreen(c, fb);
  } finally {
    c.close();
    await h.done();
  }
});

for (const [label, f] of [["native", NATIVE], ["RGB565 big-endian", RGB565_BE]] as const) {
  Deno.test(`ZRLE (${label}) decodes back to the framebuffer, full and incremental`, async () => {
    const fb = makeFb(300, 200);
    drawScene(fb, 1);
    const h = await harness(fb);
    const c = await RfbTestClient.connect(h.server.port);
    try {
      await c.handshake();
      await c.setPixelFormat(f);
      await c.setEncodings([16, 0]);
      await c.requestUpdate(false);
      await c.message();
      assert.deepEqual([...new Set(c.seen)], [16]);
      assertScreen(c, fb, f);
      // Change a few areas: the next updates carry only changed tiles, still ZRLE.
      for (let y = 70; y < 90; y++) {
        for (let x = 10; x < 290; x++) fb.px[y * fb.stride + x] = 0x00ff7f00 + x;
      }
      await settle(c, fb, f, [16]);
      drawScene(fb, 3);
      await settle(c, fb, f, [16]);
    } finally {
      c.close();
      await h.done();
    }
  });
}

const BGR233: TestFormat = {
  bpp: 8,
  depth: 8,
  bigEndian: false,
  redMax: 7,
  greenMax: 7,
  blueMax: 3,
  redShift: 0,
  greenShift: 3,
  blueShift: 6,
};

for (
  const [label, f, encs] of [
    ["Raw, RGB565 big-endian", RGB565_BE, [0]],
    ["Raw, 8-bit BGR233", BGR233, [0]],
    ["ZRLE, 8-bit BGR233", BGR233, [16]],
  ] as const
) {
  Deno.test(`${label}: converted pixels equal the framebuffer's`, async () => {
    const fb = makeFb(150, 90);
    drawScene(fb, 7);
    const h = await harness(fb);
    const c = await RfbTestClient.connect(h.server.port);
    try {
      await c.handshake();
      await c.setPixelFormat(f);
      await c.setEncodings([...encs]);
      await c.requestUpdate(false);
      await c.message();
      assert.deepEqual([...new Set(c.seen)], [...encs]);
      assertScreen(c, fb, f);
    } finally {
      c.close();
      await h.done();
    }
  });
}

Deno.test("a vertical scroll goes out as CopyRect plus the newly exposed rows", async () => {
  const fb = makeFb(256, 256);
  drawScene(fb, 2);
  const h = await harness(fb);
  const c = await RfbTestClient.connect(h.server.port);
  try {
    await c.handshake();
    await c.setEncodings([1, 0]);
    await c.requestUpdate(false);
    await c.message();
    assertScreen(c, fb);
    // Scroll up by 16 rows, as fbcon does, and draw a new bottom line.
    fb.px.copyWithin(0, 16 * fb.stride, 256 * fb.stride);
    for (let y = 240; y < 256; y++) {
      for (let x = 0; x < 256; x++) fb.px[y * fb.stride + x] = 0x0000ff00 | x;
    }
    await c.requestUpdate(true);
    await c.message();
    assert.ok(c.seen.includes(1), `expected CopyRect, got ${c.seen}`);
    assertScreen(c, fb);
  } finally {
    c.close();
    await h.done();
  }
});

Deno.test("desktop size change: DesktopSize pseudo-rectangle, then the new screen", async () => {
  const fb = makeFb(160, 100, 400 * 300 * 4);
  drawScene(fb);
  const h = await harness(fb);
  const c = await RfbTestClient.connect(h.server.port);
  try {
    await c.handshake();
    await c.setEncodings([16, -223]);
    await c.requestUpdate(false);
    await c.message();
    resize(fb, 400, 300);
    drawScene(fb, 4);
    await c.requestUpdate(true);
    await c.message();
    assert.equal(c.seen[0], -223);
    assertScreen(c, fb);
  } finally {
    c.close();
    await h.done();
  }
});

Deno.test("VNC authentication: the right password gets in, a wrong one is refused with a reason", async () => {
  const fb = makeFb(64, 64);
  drawScene(fb);
  const h = await harness(fb, { password: new TextEncoder().encode("s3cret") });
  const good = await RfbTestClient.connect(h.server.port);
  const bad = await RfbTestClient.connect(h.server.port);
  const none = await RfbTestClient.connect(h.server.port);
  try {
    assert.equal(await good.handshake({ password: "s3cret" }), 0);
    await good.requestUpdate(false);
    await good.message();
    assertScreen(good, fb);
    assert.equal(await bad.handshake({ password: "s3creT" }), 1);
    assert.equal(await bad.reason(), "Authentication failed");
    await assert.rejects(() => bad.read(1, 3000), /closed/);
    // Asking for security None when a password is set: refused.
    const types = await none.version();
    assert.deepEqual(types, [2]);
    await none.write([1]);
    assert.equal(await none.u32(), 1);
    assert.match(await none.reason(), /not offered/);
    assert.ok(h.logs.some((l) => /authentication failed/.test(l)), h.logs.join("\n"));
  } finally {
    for (const c of [good, bad, none]) c.close();
    await h.done();
  }
});

Deno.test("RFB 3.3 clients get the server-chosen security type", async () => {
  const fb = makeFb(64, 64);
  const h = await harness(fb);
  const c = await RfbTestClient.connect(h.server.port);
  try {
    assert.deepEqual(await c.version("RFB 003.003\n"), [1]);
    await c.init(true); // no SecurityResult for None in 3.3
    assert.equal(c.width, 64);
  } finally {
    c.close();
    await h.done();
  }
});

Deno.test("malformed and truncated client messages end only that session", async () => {
  const fb = makeFb(64, 64);
  drawScene(fb);
  const h = await harness(fb);
  const ok = await RfbTestClient.connect(h.server.port);
  const cases: [string, (c: RfbTestClient) => Promise<void>, RegExp][] = [
    ["bad version", async (c) => {
      await c.read(12);
      await c.write(new TextEncoder().encode("HELLO WORLD\n"));
    }, /not an RFB/],
    ["unknown message", async (c) => {
      await c.handshake();
      await c.write([99]);
    }, /unknown client message type 99/],
    ["colour map format", async (c) => {
      await c.handshake();
      await c.write([0, 0, 0, 0, 8, 8, 0, 0, 0, 7, 0, 7, 0, 3, 0, 3, 6, 0, 0, 0]);
    }, /Colour-map/],
    ["bad bpp", async (c) => {
      await c.handshake();
      await c.write([0, 0, 0, 0, 24, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    }, /bits per pixel 24/],
    ["huge cut text", async (c) => {
      await c.handshake();
      await c.write([6, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
    }, /ClientCutText/],
    ["too many encodings", async (c) => {
      await c.handshake();
      await c.write([2, 0, 0xff, 0xff]);
    }, /SetEncodings with 65535/],
    ["truncated then gone", async (c) => {
      await c.handshake();
      await c.write([2, 0, 0, 5, 0, 0]); // SetEncodings cut short
    }, /client disconnected/],
  ];
  try {
    await ok.handshake();
    for (const [label, script, logged] of cases) {
      const c = await RfbTestClient.connect(h.server.port);
      await script(c);
      if (label === "truncated then gone") c.close();
      else await assert.rejects(() => c.read(10_000, 3000), /closed/, label);
      const deadline = Date.now() + 3000;
      while (!h.logs.some((l) => logged.test(l)) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(h.logs.some((l) => logged.test(l)), `${label}: ${h.logs.join("\n")}`);
      c.close();
    }
    // The well-behaved client still works.
    await ok.requestUpdate(false);
    await ok.message();
    assertScreen(ok, fb);
    assert.equal(h.server.clients, 1);
  } finally {
    ok.close();
    await h.done();
  }
});

Deno.test("a client that never reads is coalesced, then dropped; others keep getting updates", async () => {
  const fb = makeFb(640, 480);
  drawScene(fb);
  const h = await harness(fb, { maxQueueBytes: 256 * 1024, stuckMs: 1500 });
  const stuck = await RfbTestClient.connect(h.server.port);
  const live = await RfbTestClient.connect(h.server.port);
  try {
    await stuck.handshake();
    await live.handshake();
    await live.requestUpdate(false);
    await live.message();
    // The stuck client asks for a full update (1.2 MB), then for more, and never reads.
    await stuck.requestUpdate(false);
    // The live client keeps updating until the stuck one is dropped.
    const t0 = Date.now();
    let frames = 0;
    const dropped = () => h.logs.some((l) => /client 1: not reading for .* dropped/.test(l));
    while ((Date.now() - t0 < 2500 || !dropped()) && Date.now() - t0 < 20_000) {
      drawScene(fb, frames + 5);
      if (!dropped()) await stuck.requestUpdate(true); // asks, never reads
      await live.requestUpdate(true);
      const t = Date.now();
      await live.message(2000);
      assert.ok(Date.now() - t < 1000, "the live client waited on the stuck one");
      frames++;
    }
    await settle(live, fb);
    assert.ok(frames >= 5, `only ${frames} updates for the live client`);
    assert.ok(h.logs.some((l) => /client 1 falls behind/.test(l)), h.logs.join("\n"));
    assert.ok(
      h.logs.some((l) => /client 1: not reading for .* dropped/.test(l)),
      h.logs.join("\n"),
    );
    assert.equal(h.server.clients, 1);
  } finally {
    stuck.close();
    live.close();
    await h.done();
  }
});

Deno.test("key events reach the input sink; several clients share the screen", async () => {
  const fb = makeFb(128, 96);
  drawScene(fb);
  const h = await harness(fb);
  const cs = await Promise.all([0, 1, 2].map(() => RfbTestClient.connect(h.server.port)));
  try {
    for (const c of cs) await c.handshake();
    await cs[0].key(true, 0x61);
    await cs[2].key(false, 0x61);
    for (const c of cs) {
      await c.setEncodings([16]);
      await c.requestUpdate(false);
      await c.message();
      assertScreen(c, fb);
    }
    assert.deepEqual(h.keys, [[true, 0x61], [false, 0x61]]);
  } finally {
    for (const c of cs) c.close();
    await h.done();
  }
});

Deno.test("the encoder runs in a thread named vnc-worker", async () => {
  const fb = makeFb(64, 64);
  const h = await harness(fb);
  try {
    const names: string[] = [];
    for (const e of Deno.readDirSync("/proc/self/task")) {
      names.push(Deno.readTextFileSync(`/proc/self/task/${e.name}/comm`).trim());
    }
    assert.ok(names.includes("vnc-worker"), names.join(","));
  } finally {
    await h.done();
  }
});

Deno.test("a connection that never finishes the handshake is dropped; too many are refused", async () => {
  const fb = makeFb(64, 64);
  const h = await harness(fb, { handshakeMs: 600, maxClients: 2 });
  const idle = await RfbTestClient.connect(h.server.port);
  const ok = await RfbTestClient.connect(h.server.port);
  try {
    await ok.handshake();
    const extra = await RfbTestClient.connect(h.server.port);
    await assert.rejects(() => extra.read(12, 3000), /closed/);
    extra.close();
    assert.ok(
      h.logs.some((l) => /connection refused: 2 clients already/.test(l)),
      h.logs.join("\n"),
    );
    await idle.read(12); // the version, then silence
    await assert.rejects(() => idle.read(1, 5000), /closed/);
    assert.ok(h.logs.some((l) => /client 1: no handshake in 0\.6 s/.test(l)), h.logs.join("\n"));
    assert.equal(h.server.clients, 1);
  } finally {
    idle.close();
    ok.close();
    await h.done();
  }
});
