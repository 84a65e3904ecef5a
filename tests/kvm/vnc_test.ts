// The stock Debian kernel draws its console on denovmm's framebuffer (efifb
// + fbcon, no modules), a VNC client sees it, and a line typed through VNC
// (RFB key events -> PS/2 scancodes -> i8042 -> atkbd) reaches a shell on
// tty1 whose command writes back over the serial console.
import assert from "node:assert/strict";
import { HOST_LIB_DIR, linuxFixture, VNC_MARKER as M, vncInitramfs } from "./fixtures.ts";
import { RfbTestClient } from "../../ui/vnc/_test_client.ts";
import { zlibAvailable } from "../../sys/zlib.ts";
import { encodePng } from "../../ui/vnc/testdata/png.ts";

const repo = new URL("../..", import.meta.url).pathname;

const SHIFTED = '~!@#$%^&*()_+{}|:"<>?';

async function typeLine(c: RfbTestClient, text: string): Promise<void> {
  for (const ch of text) {
    const shift = SHIFTED.includes(ch) || (ch >= "A" && ch <= "Z");
    if (shift) await c.key(true, 0xffe1);
    await c.key(true, ch.charCodeAt(0));
    await c.key(false, ch.charCodeAt(0));
    if (shift) await c.key(false, 0xffe1);
  }
  await c.key(true, 0xff0d);
  await c.key(false, 0xff0d);
}

function litPixels(c: RfbTestClient): number {
  let n = 0;
  for (const p of c.screen) if ((p & 0xffffff) !== 0) n++;
  return n;
}

Deno.test("the stock kernel's console shows over VNC and a line typed there reaches a shell", async () => {
  const f = await linuxFixture();
  const initrd = await vncInitramfs();
  const display = 40 + Math.floor(Math.random() * 40);
  const hostLibs = await Deno.stat(`${HOST_LIB_DIR}/libz.so.1`).then(
    () => HOST_LIB_DIR,
    () => undefined,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      "--allow-ffi",
      "main.ts",
      "--kernel",
      f.kernel,
      "--initrd",
      initrd,
      "--append",
      "console=tty0 console=ttyS0 panic=-1",
      "--memory",
      "512M",
      "--vnc",
      `:${display}`,
    ],
    cwd: repo,
    // The nested host carries only Deno's own libraries; a libz copied next
    // to the checkout lets the VMM serve ZRLE there too (else it serves Raw).
    env: hostLibs ? { LD_LIBRARY_PATH: hostLibs } : {},
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(600_000),
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let stdout = "";
  const dec = new TextDecoder();
  const reader = child.stdout.getReader();
  const waitFor = async (re: RegExp) => {
    while (!re.test(stdout)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`VMM ended before ${re}:\n${stdout.slice(-3000)}\n${await stderr}`);
      stdout += dec.decode(value, { stream: true });
    }
  };
  let c: RfbTestClient | undefined;
  try {
    await waitFor(new RegExp(`${M} shell-ready`));
    assert.match(stdout, new RegExp(`${M} fb0=EFI VGA size=1024,768`), stdout.slice(-3000));
    c = await RfbTestClient.connect(5900 + display);
    assert.equal(await c.handshake(), 0);
    assert.deepEqual([c.width, c.height], [1024, 768]);
    // ZRLE when this test process can inflate it (the nested host's Deno has no libz).
    await c.setEncodings(zlibAvailable() ? [16, 1, 0] : [1, 0]);
    await c.requestUpdate(false);
    await c.message(90_000);
    const lit = litPixels(c);
    // Boot messages in the console font: thousands of lit pixels, far from a blank screen.
    assert.ok(lit > 2000, `only ${lit} lit pixels on the console`);
    await Deno.writeFile(
      `${repo}/.cache/vnc-console-boot.png`,
      encodePng(c.screen, c.width, c.height),
    );
    await typeLine(c, "echo vnc-ok-$((6*7)) > /tmp/done");
    await waitFor(new RegExp(`${M} got \\[vnc-ok-42\\]`));
    // A picture of the typed line on the framebuffer console, for a person to
    // look at (nothing is asserted on it): the guest powers off right after the
    // line, so the VMM may close the connection first.
    try {
      await c.requestUpdate(false);
      await c.message(90_000);
      await Deno.writeFile(
        `${repo}/.cache/vnc-console-typed.png`,
        encodePng(c.screen, c.width, c.height),
      );
    } catch (e) {
      console.log(`no picture after typing: ${(e as Error).message}`);
    }
    await waitFor(/DENOVMM-INIT action=poweroff/);
  } catch (e) {
    child.kill();
    await child.status;
    throw new Error(
      `${(e as Error).message}\n--- VMM stdout ---\n${
        stdout.slice(-3000)
      }\n--- stderr ---\n${await stderr}`,
    );
  } finally {
    c?.close();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      stdout += dec.decode(value, { stream: true });
    }
  }
  const { code } = await child.status;
  assert.equal(code, 0, `${stdout.slice(-2000)}\n${await stderr}`);
});
