// noVNC (npm @novnc/novnc, fetched into a temporary folder, never a runtime
// dependency) in Debian's headless Chromium connects over the WebSocket
// transport, draws the screen on its canvas, and types a key. The page posts
// the canvas back; the test finds the console's text region drawn where the
// framebuffer has it, every pixel equal.
import assert from "node:assert/strict";
import { ensureAptPackages } from "../../tests/fixtures/debian.ts";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { VncServer } from "./server.ts";
import { makeFb, type TestFb } from "./testdata/fb.ts";
import { encodePng } from "./testdata/png.ts";

const NOVNC = "@novnc/novnc@1.7.0";
const repo = new URL("../..", import.meta.url).pathname;

/** A text console: black, grey glyph-like marks in rows 16..95 (x 8..519), a blue status bar. */
function drawConsole(fb: TestFb): void {
  for (let y = 0; y < fb.height; y++) {
    for (let x = 0; x < fb.width; x++) {
      let v = 0;
      if (y >= 16 && y < 96 && x >= 8 && x < 520) {
        const cx = (x - 8) % 8,
          cy = (y - 16) % 16,
          ch = Math.floor((x - 8) / 8) * 7 + Math.floor((y - 16) / 16);
        v = cy > 2 && cy < 13 && cx < 6 && ((ch * 31 + cx * 7 + cy * 3) % 5 < 2) ? 0xaaaaaa : 0;
      }
      if (y >= fb.height - 16) v = 0x0000aa;
      fb.px[y * fb.stride + x] = v;
    }
  }
}

async function fetchNoVnc(dir: string): Promise<string> {
  const npm = await new Deno.Command("npm", {
    args: ["pack", "--silent", NOVNC],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(npm.code, 0, new TextDecoder().decode(npm.stderr));
  const tgz = new TextDecoder().decode(npm.stdout).trim().split("\n").pop()!;
  const tar = await new Deno.Command("tar", { args: ["xzf", tgz], cwd: dir }).output();
  assert.equal(tar.code, 0);
  return `${dir}/package`;
}

const PAGE = (wsPort: number) =>
  `<!doctype html>
<html><body style="margin:0"><div id="screen"></div>
<script type="module">
import RFB from "/novnc/core/rfb.js";
const post = (path, body) => fetch(path, { method: "POST", body });
const rfb = new RFB(document.getElementById("screen"), "ws://127.0.0.1:${wsPort}", { wsProtocols: ["binary"] });
rfb.addEventListener("disconnect", (e) => post("/error", "disconnected, clean=" + e.detail.clean));
rfb.addEventListener("securityfailure", (e) => post("/error", "security failure " + e.detail.reason));
rfb.addEventListener("connect", async () => {
  rfb.sendKey(0x61, "KeyA");
  const deadline = Date.now() + 15000;
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    const c = document.querySelector("#screen canvas");
    if (!c || c.width === 0) continue;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] | d[i + 1] | d[i + 2]) lit++;
    if (lit > 1000 || Date.now() > deadline) {
      await post("/canvas?w=" + c.width + "&h=" + c.height, d);
      return;
    }
  }
});
</script></body></html>`;

Deno.test("noVNC in headless Chromium shows the console over the WebSocket transport", async () => {
  await ensureAptPackages(["chromium"]);
  const dir = await Deno.makeTempDir({ prefix: "denovmm-novnc-" });
  const novnc = await fetchNoVnc(dir);
  const fb = makeFb(640, 400);
  drawConsole(fb);
  const loop = new MainLoop();
  const running = loop.run();
  const keys: [boolean, number][] = [];
  const logs: string[] = [];
  const server = await VncServer.start(loop, {
    listen: { host: "127.0.0.1", port: 0 },
    websocket: { host: "127.0.0.1", port: 0 },
    framebuffer: fb.source,
    input: { key: (d, k) => keys.push([d, k]) },
    log: (l) => logs.push(l),
  });
  const result = Promise.withResolvers<{ w: number; h: number; rgba: Uint8Array }>();
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    if (req.method === "POST" && url.pathname === "/canvas") {
      const rgba = new Uint8Array(await req.arrayBuffer());
      result.resolve({
        w: Number(url.searchParams.get("w")),
        h: Number(url.searchParams.get("h")),
        rgba,
      });
      return new Response("ok");
    }
    if (req.method === "POST" && url.pathname === "/error") {
      result.reject(new Error(`noVNC: ${await req.text()}`));
      return new Response("ok");
    }
    if (url.pathname === "/") {
      return new Response(PAGE(server.websocketPort), { headers: { "content-type": "text/html" } });
    }
    if (url.pathname.startsWith("/novnc/") && !url.pathname.includes("..")) {
      try {
        const body = await Deno.readFile(`${novnc}/${url.pathname.slice(7)}`);
        return new Response(body, { headers: { "content-type": "text/javascript" } });
      } catch {
        return new Response("not found", { status: 404 });
      }
    }
    return new Response("not found", { status: 404 });
  });
  const chrome = new Deno.Command("chromium", {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${dir}/profile`,
      `http://127.0.0.1:${http.addr.port}/`,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const chromeLog = new Response(chrome.stderr).text();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const got = await Promise.race([
      result.promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("noVNC posted nothing in 60 s")), 60_000);
      }),
    ]).catch(async (e) => {
      chrome.kill();
      throw new Error(`${e.message}\n${logs.join("\n")}\n${(await chromeLog).slice(-2000)}`);
    });
    assert.deepEqual([got.w, got.h], [fb.width, fb.height]);
    const px = new Uint32Array(got.w * got.h);
    let bad = 0, x0 = got.w, y0 = got.h, x1 = 0, y1 = 0;
    for (let i = 0; i < px.length; i++) {
      const r = got.rgba[4 * i], g = got.rgba[4 * i + 1], b = got.rgba[4 * i + 2];
      px[i] = (r << 16) | (g << 8) | b;
      if (px[i] !== (fb.px[Math.floor(i / got.w) * fb.stride + (i % got.w)] & 0xffffff)) bad++;
      const y = Math.floor(i / got.w), x = i % got.w;
      if (px[i] === 0xaaaaaa) {
        x0 = Math.min(x0, x), y0 = Math.min(y0, y), x1 = Math.max(x1, x), y1 = Math.max(y1, y);
      }
    }
    await Deno.writeFile(`${repo}/.cache/novnc-canvas.png`, encodePng(px, got.w, got.h)).catch(
      () => {},
    );
    assert.equal(bad, 0, `${bad} canvas pixels differ from the framebuffer`);
    // The text region, found on the canvas, is where the console drew it.
    assert.ok(
      x0 >= 8 && x1 < 520 && y0 >= 16 && y1 < 96 && x1 - x0 > 400 && y1 - y0 > 60,
      `${x0},${y0}-${x1},${y1}`,
    );
    assert.deepEqual(keys.slice(0, 2), [[true, 0x61], [false, 0x61]]);
  } finally {
    clearTimeout(timer);
    try {
      chrome.kill();
    } catch { /* exited */ }
    await chrome.status;
    await chromeLog;
    await http.shutdown();
    await server.close();
    loop.stop();
    await running;
    loop.close();
    await Deno.remove(dir, { recursive: true });
  }
});
