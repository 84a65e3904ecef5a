// The stock Debian kernel draws its console on denovmm's framebuffer (efifb
// + fbcon, no modules), a VNC client sees it, and a line typed through VNC
// (RFB key events -> PS/2 scancodes -> i8042 -> atkbd; its Enter through
// QMP send-key) reaches a shell on tty1 whose command writes back over the
// serial console; QMP screendump shows what the VNC client sees. A VNC pointer
// event reaches the guest through the virtio tablet (virtio_input + evdev
// modules): the guest reads it from /dev/input/eventN. With the tablet off,
// pointer events drive the PS/2 mouse on the i8042's AUX port instead, which
// the stock psmouse module probes as an IntelliMouse.
import assert from "node:assert/strict";
import {
  BOCHS_MARKER,
  bochsInitramfs,
  HOST_LIB_DIR,
  linuxFixture,
  PS2_MARKER,
  ps2MouseInitramfs,
  VNC_MARKER as M,
  vncInitramfs,
} from "./fixtures.ts";
import { RfbTestClient } from "../../ui/vnc/_test_client.ts";
import { TestClient } from "../../qmp/_test_client.ts";
import { zlibAvailable } from "../../sys/zlib.ts";
import { encodePng } from "../../ui/vnc/testdata/png.ts";
import { REPO, runLog, startVmm, type VmmOptions } from "./_vmm_process.ts";

const SHIFTED = '~!@#$%^&*()_+{}|:"<>?';

async function typeLine(c: RfbTestClient, text: string, enter = true): Promise<void> {
  for (const ch of text) {
    const shift = SHIFTED.includes(ch) || (ch >= "A" && ch <= "Z");
    if (shift) await c.key(true, 0xffe1);
    await c.key(true, ch.charCodeAt(0));
    await c.key(false, ch.charCodeAt(0));
    if (shift) await c.key(false, 0xffe1);
  }
  if (!enter) return;
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

/** Writes the client's picture to .cache/NAME, for a person to look at. */
async function savePicture(c: RfbTestClient, name: string): Promise<void> {
  await Deno.writeFile(`${REPO}.cache/${name}`, encodePng(c.screen, c.width, c.height));
}

function litPixels(c: RfbTestClient): number {
  let n = 0;
  for (const p of c.screen) if ((p & 0xffffff) !== 0) n++;
  return n;
}

/**
 * Boots the stock kernel with `initrd` and a VNC display on a random
 * display number, as a user would (`--allow-ffi` only).
 */
async function startVncGuest(
  initrd: string,
  append: string,
  vncOptions = "",
  options: VmmOptions = {},
  extraArgs: string[] = [],
) {
  const f = await linuxFixture();
  const display = 40 + Math.floor(Math.random() * 40);
  const vmm = startVmm([
    "--kernel",
    f.kernel,
    "--initrd",
    initrd,
    "--append",
    append,
    "--memory",
    "512M",
    "--vnc",
    `:${display}${vncOptions}`,
    ...extraArgs,
  ], { timeoutMs: 600_000, ...options });
  return { vmm, display };
}

Deno.test("the stock kernel's console shows over VNC, a pointer event reaches the virtio tablet, a typed line a shell", async () => {
  const hostLibs = await Deno.stat(`${HOST_LIB_DIR}/libz.so.1`).then(
    () => HOST_LIB_DIR,
    () => undefined,
  );
  const dir = await Deno.makeTempDir({ prefix: "denovmm-vnc-" });
  const qmpPath = `${dir}/qmp.sock`;
  const { vmm, display } = await startVncGuest(
    await vncInitramfs(),
    "console=tty0 console=ttyS0 panic=-1",
    "",
    // The nested host carries only Deno's own libraries; a libz copied next
    // to the checkout lets the VMM serve ZRLE there too (else it serves Raw).
    { env: hostLibs ? { LD_LIBRARY_PATH: hostLibs } : undefined },
    ["-qmp", `unix:${qmpPath},server,wait=off`],
  );
  const waitFor = (re: RegExp) => vmm.waitFor(re);
  let c: RfbTestClient | undefined;
  try {
    await waitFor(new RegExp(`${M} shell-ready`));
    assert.match(vmm.stdout, new RegExp(`${M} fb0=EFI VGA size=1024,768`), runLog(vmm));
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
    await savePicture(c, "vnc-console-boot.png");
    // QMP screendump writes what the VNC client was sent: the same console
    // (a blinking cursor's cell may differ), as QEMU's binary PPM.
    const q = new TestClient(qmpPath);
    try {
      await q.next();
      await q.call("qmp_capabilities");
      const dumped = await q.call("screendump", { filename: `${dir}/screen.ppm` });
      assert.deepEqual(dumped, { return: {} }, runLog(vmm));
    } finally {
      q.close();
    }
    const ppm = await Deno.readFile(`${dir}/screen.ppm`);
    const head = "P6\n1024 768\n255\n";
    assert.equal(new TextDecoder().decode(ppm.subarray(0, head.length)), head);
    let differing = 0;
    for (let i = 0; i < 1024 * 768; i++) {
      const o = head.length + i * 3;
      if (((ppm[o] << 16) | (ppm[o + 1] << 8) | ppm[o + 2]) !== (c.screen[i] & 0xffffff)) {
        differing++;
      }
    }
    assert.ok(differing < 1024, `${differing} pixels differ between screendump and VNC`);
    // The tablet: found by its QEMU name, and a click at the screen's middle
    // arrives as ABS_X, ABS_Y, BTN_LEFT and SYN_REPORT (0..32767 axes).
    assert.match(vmm.stdout, new RegExp(`${M} tablet=\\[/dev/input/event\\d+\\] 1`), runLog(vmm));
    await c.pointer(1, 512, 384);
    await c.pointer(0, 512, 384);
    await waitFor(new RegExp(`${M} tablet-events \\[[0-9a-f]+\\]`));
    const hex = vmm.stdout.match(new RegExp(`${M} tablet-events \\[([0-9a-f]+)\\]`))![1];
    assert.deepEqual(inputEvents(hex), [
      [3, 0, Math.floor(512 * 32767 / 1023)],
      [3, 1, Math.floor(384 * 32767 / 767)],
      [1, 0x110, 1],
      [0, 0, 0],
    ]);
    // The line through VNC, its Enter through QMP send-key (the same i8042).
    await typeLine(c, "echo vnc-ok-$((6*7)) > /tmp/done", false);
    const keys = new TestClient(qmpPath);
    try {
      await keys.next();
      await keys.call("qmp_capabilities");
      const sent = await keys.call("send-key", { keys: [{ type: "qcode", data: "ret" }] });
      assert.deepEqual(sent, { return: {} }, runLog(vmm));
    } finally {
      keys.close();
    }
    await waitFor(new RegExp(`${M} got \\[vnc-ok-42\\]`));
    // A picture of the typed line on the framebuffer console, for a person to
    // look at (nothing is asserted on it): the guest powers off right after the
    // line, so the VMM may close the connection first.
    try {
      await c.requestUpdate(false);
      await c.message(90_000);
      await savePicture(c, "vnc-console-typed.png");
    } catch (e) {
      console.log(`no picture after typing: ${(e as Error).message}`);
    }
    await waitFor(/DENOVMM-INIT action=poweroff/);
  } catch (e) {
    vmm.kill();
    throw new Error(`${(e as Error).message}${runLog(await vmm.done)}`);
  } finally {
    c?.close();
  }
  const r = await vmm.done;
  await Deno.remove(dir, { recursive: true });
  assert.equal(r.code, 0, runLog(r));
});

Deno.test("the guest's bochs driver switches the display mode and a VNC client gets DesktopSize", async () => {
  const { vmm, display } = await startVncGuest(
    await bochsInitramfs(),
    "console=tty0 console=ttyS0 panic=-1 video=800x600",
  );
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
    await vmm.waitFor(new RegExp(`${BOCHS_MARKER} drawn`));
    assert.match(vmm.stdout, new RegExp(`${BOCHS_MARKER} fb0=bochs-drmdrmfb size=800,`));
    await c.requestUpdate(false);
    await c.message(90_000);
    const lit = litPixels(c);
    assert.ok(lit > 2000, `only ${lit} lit pixels on the bochs console`);
    await savePicture(c, "vnc-bochs-800x600.png");
  } catch (e) {
    vmm.kill();
    throw new Error(`${(e as Error).message}${runLog(await vmm.done)}`);
  } finally {
    c?.close();
  }
  const r = await vmm.done;
  assert.equal(r.code, 0, runLog(r));
});

Deno.test("with --vnc ...,tablet=off a VNC pointer event reaches the stock kernel's psmouse over the i8042 AUX port", async () => {
  const { vmm, display } = await startVncGuest(
    await ps2MouseInitramfs(),
    "console=ttyS0 panic=-1",
    ",tablet=off",
  );
  let c: RfbTestClient | undefined;
  try {
    await vmm.waitFor(new RegExp(`${PS2_MARKER} (ready|mouse=\\[\\])`));
    // psmouse found an IntelliMouse (ID 3 after the 200/100/80 knock), and no tablet exists.
    assert.match(
      vmm.stdout,
      new RegExp(
        `${PS2_MARKER} mouse=\\[Name="ImPS/2 Generic Wheel Mouse"\\] ev=\\[/dev/input/event\\d+\\] tablets=0`,
      ),
      runLog(vmm),
    );
    c = await RfbTestClient.connect(5900 + display);
    assert.equal(await c.handshake(), 0);
    await c.pointer(0, 500, 400); // sets the position
    await c.pointer(1, 507, 405); // 7 right, 5 down, left pressed
    await c.pointer(1 << 3, 507, 405); // left released, one wheel notch up
    await vmm.waitFor(new RegExp(`${PS2_MARKER} events \\[[0-9a-f]+\\]`));
    const hex = vmm.stdout.match(new RegExp(`${PS2_MARKER} events \\[([0-9a-f]+)\\]`))![1];
    // psmouse reports the wheel, then the buttons, then X and Y; zero moves are not events.
    assert.deepEqual(inputEvents(hex), [
      [1, 0x110, 1],
      [2, 0, 7],
      [2, 1, 5],
      [0, 0, 0],
      [2, 8, 1],
      [1, 0x110, 0],
      [0, 0, 0],
    ]);
    await vmm.waitFor(/DENOVMM-INIT action=poweroff/);
  } catch (e) {
    vmm.kill();
    throw new Error(`${(e as Error).message}${runLog(await vmm.done)}`);
  } finally {
    c?.close();
  }
  const r = await vmm.done;
  assert.equal(r.code, 0, runLog(r));
});
