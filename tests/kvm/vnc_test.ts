// The stock Debian kernel draws its console on denovmm's framebuffer (efifb
// + fbcon, no modules), a VNC client sees it, and a line typed through VNC
// (RFB key events -> PS/2 scancodes -> i8042 -> atkbd) reaches a shell on
// tty1 whose command writes back over the serial console. A VNC pointer
// event reaches the guest through the virtio tablet (virtio_input + evdev
// modules): the guest reads it from /dev/input/eventN.
import assert from "node:assert/strict";
import {
  BOCHS_MARKER,
  bochsInitramfs,
  HOST_LIB_DIR,
  linuxFixture,
  VNC_MARKER as M,
  vncInitramfs,
} from "./fixtures.ts";
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

/** (type, code, value) of each `struct input_event` (24 bytes on x86-64) in hex. */
function inputEvents(hex: string): number[][] {
  const b = new Uint8Array(hex.match(/../g)!.map((h) => parseInt(h, 16)));
  const v = new DataView(b.buffer);
  const out = [];
  for (let o = 0; o + 24 <= b.length; o += 24) {
    out.push([v.getUint16(o + 16, true), v.getUint16(o + 18, true), v.getInt32(o + 20, true)]);
  }
  return out;
}

function litPixels(c: RfbTestClient): number {
  let n = 0;
  for (const p of c.screen) if ((p & 0xffffff) !== 0) n++;
  return n;
}

Deno.test("the stock kernel's console shows over VNC, a pointer event reaches the virtio tablet, a typed line a shell", async () => {
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
    // The tablet: found by its QEMU name, and a click at the screen's middle
    // arrives as ABS_X, ABS_Y, BTN_LEFT and SYN_REPORT (0..32767 axes).
    assert.match(
      stdout,
      new RegExp(`${M} tablet=\\[/dev/input/event\\d+\\] 1`),
      stdout.slice(-3000),
    );
    await c.pointer(1, 512, 384);
    await c.pointer(0, 512, 384);
    await waitFor(new RegExp(`${M} tablet-events \\[[0-9a-f]+\\]`));
    const hex = stdout.match(new RegExp(`${M} tablet-events \\[([0-9a-f]+)\\]`))![1];
    assert.deepEqual(inputEvents(hex), [
      [3, 0, Math.floor(512 * 32767 / 1023)],
      [3, 1, Math.floor(384 * 32767 / 767)],
      [1, 0x110, 1],
      [0, 0, 0],
    ]);
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

Deno.test("the guest's bochs driver switches the display mode and a VNC client gets DesktopSize", async () => {
  const f = await linuxFixture();
  const initrd = await bochsInitramfs();
  const display = 40 + Math.floor(Math.random() * 40);
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
      "console=tty0 console=ttyS0 panic=-1 video=800x600",
      "--memory",
      "512M",
      "--vnc",
      `:${display}`,
    ],
    cwd: repo,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(600_000),
  }).spawn();
  const stderr = new Response(child.stderr).text();
  // Drained all along: the boot log must never fill the pipe while the client waits.
  let stdout = "";
  const drained = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of child.stdout) stdout += dec.decode(chunk, { stream: true });
  })();
  let c: RfbTestClient | undefined;
  try {
    // Connect while the guest still boots on efifb, so the switch happens under the client.
    const deadline = Date.now() + 60_000;
    while (!c) {
      try {
        c = await RfbTestClient.connect(5900 + display);
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.equal(await c.handshake(), 0);
    assert.deepEqual([c.width, c.height], [1024, 768], "the boot mode, before the driver");
    await c.setEncodings(zlibAvailable() ? [16, 1, 0, -223] : [1, 0, -223]);
    await c.requestUpdate(false);
    await c.message(120_000);
    let desktopSize = false;
    const until = Date.now() + 240_000;
    while (c.width !== 800 && Date.now() < until) {
      await c.requestUpdate(true);
      await c.message(240_000);
      if (c.seen.includes(-223)) desktopSize = true;
    }
    assert.ok(desktopSize, `no DesktopSize; client at ${c.width}x${c.height}`);
    assert.deepEqual([c.width, c.height], [800, 600]);
    while (!stdout.includes(`${BOCHS_MARKER} drawn`)) {
      if (Date.now() > until) throw new Error("the guest never drew on the bochs console");
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(stdout, new RegExp(`${BOCHS_MARKER} fb0=bochs-drmdrmfb size=800,`));
    await c.requestUpdate(false);
    await c.message(90_000);
    const lit = litPixels(c);
    assert.ok(lit > 2000, `only ${lit} lit pixels on the bochs console`);
    await Deno.writeFile(
      `${repo}/.cache/vnc-bochs-800x600.png`,
      encodePng(c.screen, c.width, c.height),
    );
  } catch (e) {
    child.kill();
    await child.status;
    await drained;
    throw new Error(
      `${(e as Error).message}\n--- VMM stdout ---\n${
        stdout.slice(-3000)
      }\n--- stderr ---\n${await stderr}`,
    );
  } finally {
    c?.close();
  }
  await drained;
  const { code } = await child.status;
  assert.equal(code, 0, `${stdout.slice(-2000)}\n${await stderr}`);
});
