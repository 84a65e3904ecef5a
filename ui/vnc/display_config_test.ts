import assert from "node:assert/strict";
import { resolveDisplay } from "./display_config.ts";
import { VmConfigError } from "../../vm/config.ts";
import { closeResolved, resolveConfig } from "../../vm/resolve.ts";
import { fakeBzImage } from "../../boot/_test_images.ts";

Deno.test("display resolution: none, a mode, VNC with its password read now", async () => {
  assert.equal(resolveDisplay(undefined, undefined), undefined);
  assert.equal(resolveDisplay("none", undefined), undefined);
  assert.deepEqual(resolveDisplay({ width: 800, height: 600 }, undefined), {
    width: 800,
    height: 600,
  });
  const d = resolveDisplay(undefined, ":2,websocket");
  assert.deepEqual([d?.width, d?.height, d?.vnc?.port, d?.vnc?.websocketPort], [
    1024,
    768,
    5902,
    5702,
  ]);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/pw`, "sesame\n");
    assert.deepEqual(
      resolveDisplay(undefined, `:0,password-file=${dir}/pw`)?.password,
      new TextEncoder().encode("sesame"),
    );
    await Deno.writeTextFile(`${dir}/empty`, "\n");
    const bad: [Parameters<typeof resolveDisplay>, RegExp][] = [
      [["none", ":0"], /drop --display none/],
      [[undefined, "nonsense"], /Invalid --vnc 'nonsense'/],
      [
        [undefined, `:0,password-file=${dir}/missing`],
        /cannot read VNC password file .*No such file/,
      ],
      [[undefined, `:0,password-file=${dir}/empty`], /password file is empty/],
    ];
    for (const [args, re] of bad) {
      assert.throws(
        () => resolveDisplay(...args),
        (e) => e instanceof VmConfigError && re.test(e.message),
        String(args),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a VmConfig with vnc and no kernel is refused", () => {
  assert.throws(
    () =>
      resolveConfig({
        flat: { code: new Uint8Array([0xf4]), loadAddr: 0x1000, entry: 0x1000 },
        vnc: ":0",
      }),
    /A display needs a bzImage kernel/,
  );
});

Deno.test("resolveConfig carries the display to the builder", () => {
  const rc = resolveConfig({ kernel: fakeBzImage(), vnc: ":3" });
  try {
    assert.deepEqual([rc.display?.width, rc.display?.height, rc.display?.vnc?.port], [
      1024,
      768,
      5903,
    ]);
    assert.equal(resolveConfig({ kernel: fakeBzImage() }).display, undefined);
    assert.deepEqual(
      resolveConfig({ kernel: fakeBzImage(), display: { width: 640, height: 480 } }).display,
      {
        width: 640,
        height: 480,
      },
    );
  } finally {
    closeResolved(rc);
  }
});

Deno.test("a display brings the virtio tablet unless told otherwise", () => {
  assert.equal(resolveConfig({ kernel: fakeBzImage(), vnc: ":3" }).tablet, true);
  assert.equal(resolveConfig({ kernel: fakeBzImage(), vnc: ":3", tablet: false }).tablet, false);
  assert.equal(resolveConfig({ kernel: fakeBzImage() }).tablet, false);
  assert.equal(resolveConfig({ kernel: fakeBzImage(), tablet: true }).tablet, true);
  // --vnc ...,tablet=off: pointer events go to the PS/2 mouse instead.
  const off = resolveConfig({ kernel: fakeBzImage(), vnc: ":3,tablet=off" });
  assert.deepEqual([off.tablet, off.display?.vnc?.port], [false, 5903]);
  assert.equal(resolveConfig({ kernel: fakeBzImage(), vnc: ":3,tablet=on" }).tablet, true);
  assert.throws(
    () => resolveConfig({ kernel: fakeBzImage(), vnc: ":3,tablet=off", tablet: true }),
    /tablet=off conflicts with a virtio-tablet-pci device/,
  );
  assert.throws(
    () =>
      resolveConfig({
        flat: { code: new Uint8Array([0xf4]), loadAddr: 0, entry: 0 },
        tablet: true,
      }),
    /A tablet needs --kernel/,
  );
});
