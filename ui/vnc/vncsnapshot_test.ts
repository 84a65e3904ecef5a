// Debian's vncsnapshot (an RFB 3.3 client from TightVNC's code base) takes a
// screenshot from the server, with and without a password; the JPEG it
// writes, decoded by djpeg, matches the framebuffer.
import assert from "node:assert/strict";
import { ensureAptPackages } from "../../tests/fixtures/debian.ts";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { VncServer } from "./server.ts";
import { desEncryptBlock, vncKey } from "./des.ts";
import { makeFb, type TestFb } from "./testdata/fb.ts";

/** Large blocks of plain colour (JPEG keeps them), plus a white bar. */
function drawBlocks(fb: TestFb): void {
  const colours = [0xc00000, 0x00a000, 0x0000c0, 0xc0c000, 0x00c0c0, 0xc000c0, 0x808080, 0x202020];
  for (let y = 0; y < fb.height; y++) {
    for (let x = 0; x < fb.width; x++) {
      fb.px[y * fb.stride + x] = y >= 200 && y < 232
        ? 0xffffff
        : colours[((x >> 6) + (y >> 6) * 3) % colours.length];
    }
  }
}

/** vncpasswd's file format: the password DES-encrypted with VNC's fixed key. */
function vncPasswdFile(password: string): Uint8Array {
  const fixed = new Uint8Array([23, 82, 107, 6, 35, 78, 88, 7]);
  const pw = new Uint8Array(8);
  pw.set(new TextEncoder().encode(password).subarray(0, 8));
  return desEncryptBlock(vncKey(fixed), pw);
}

function readPpm(bytes: Uint8Array): { w: number; h: number; rgb: Uint8Array } {
  const head = new TextDecoder().decode(bytes.subarray(0, 64));
  const m = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(head);
  assert.ok(m, `not a PPM: ${head.slice(0, 20)}`);
  return { w: Number(m[1]), h: Number(m[2]), rgb: bytes.subarray(m[0].length) };
}

async function snapshot(port: number, dir: string, passwdFile?: string) {
  const args = ["-quality", "100", "-quiet"];
  if (passwdFile) args.push("-passwd", passwdFile);
  args.push(`127.0.0.1::${port}`, `${dir}/shot.jpg`);
  const out = await new Deno.Command("vncsnapshot", {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  return {
    code: out.code,
    log: new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout),
  };
}

Deno.test("vncsnapshot takes a screenshot that matches the framebuffer; a wrong password is refused", async () => {
  await ensureAptPackages(["vncsnapshot", "libjpeg-turbo-progs"]);
  const fb = makeFb(640, 400);
  drawBlocks(fb);
  const dir = await Deno.makeTempDir();
  for (const password of [undefined, "pw4vnc"]) {
    const loop = new MainLoop();
    const running = loop.run();
    const logs: string[] = [];
    const server = await VncServer.start(loop, {
      listen: { host: "127.0.0.1", port: 0 },
      framebuffer: fb.source,
      password: password ? new TextEncoder().encode(password) : undefined,
      log: (l) => logs.push(l),
    });
    try {
      let pwFile: string | undefined;
      if (password) {
        pwFile = `${dir}/bad.passwd`;
        await Deno.writeFile(pwFile, vncPasswdFile("wrong!"));
        const bad = await snapshot(server.port, dir, pwFile);
        assert.notEqual(bad.code, 0, bad.log);
        assert.ok(logs.some((l) => /authentication failed/.test(l)), logs.join("\n"));
        pwFile = `${dir}/good.passwd`;
        await Deno.writeFile(pwFile, vncPasswdFile(password));
      }
      const r = await snapshot(server.port, dir, pwFile);
      assert.equal(r.code, 0, r.log);
      const ppm = await new Deno.Command("djpeg", {
        args: ["-pnm", `${dir}/shot.jpg`],
        stdout: "piped",
      })
        .output();
      const img = readPpm(ppm.stdout);
      assert.deepEqual([img.w, img.h], [fb.width, fb.height]);
      let err = 0, worst = 0;
      for (let y = 0; y < fb.height; y++) {
        for (let x = 0; x < fb.width; x++) {
          const p = fb.px[y * fb.stride + x];
          const o = (y * fb.width + x) * 3;
          const d = Math.abs(img.rgb[o] - ((p >> 16) & 0xff)) +
            Math.abs(img.rgb[o + 1] - ((p >> 8) & 0xff)) +
            Math.abs(img.rgb[o + 2] - (p & 0xff));
          err += d;
          worst = Math.max(worst, d);
        }
      }
      const mean = err / (fb.width * fb.height);
      assert.ok(mean < 4, `mean error ${mean.toFixed(2)} (worst ${worst})`);
    } finally {
      await server.close();
      loop.stop();
      await running;
      loop.close();
    }
  }
  await Deno.remove(dir, { recursive: true });
});
