import assert from "node:assert/strict";
import { MainLoop } from "../mainloop/main_loop.ts";
import { VmConfigError } from "./config.ts";
import {
  consoleInput,
  netFunctionCount,
  netFunctionsOf,
  resolveNetDevices,
} from "./net_devices.ts";
import { prepareVirtioBackend, stopVirtioBackend } from "./virtio_backend.ts";
import { VIRTIO_ID_RNG } from "../devices/virtio/rng.ts";
import { VIRTIO_ID_CONSOLE } from "../devices/virtio/console.ts";

Deno.test("net/rng/console settings: counted, checked, one line each", () => {
  assert.equal(netFunctionCount({ nics: [{ ifname: "a" }, { ifname: "b" }], rng: true }), 3);
  assert.equal(netFunctionCount({ rng: false, console: "none" }), 0);
  assert.throws(() => resolveNetDevices({ rng: { bytesPerSecond: -1 } }), VmConfigError);
  assert.throws(
    () => resolveNetDevices({ console: "tty" as "virtio" }),
    /Invalid console 'tty'/,
  );
  assert.throws(() => resolveNetDevices({ rng: true }), /need --kernel/);
  assert.throws(
    () => resolveNetDevices({ kernel: "k", nics: [{ ifname: "bad name!" }] }),
    /Invalid --nic 'tap,ifname=bad name!': invalid ifname/,
  );
  const r = resolveNetDevices({ kernel: "k", rng: { bytesPerSecond: 100 }, console: "virtio" });
  assert.deepEqual(r.rng, { bytesPerSecond: 100 });
  assert.equal(r.console, "virtio");
});

Deno.test("the builder's factories build rng and console on a loop; console input finds its model", async () => {
  const loop = new MainLoop();
  try {
    const r = resolveNetDevices({ kernel: "k", rng: true, console: "virtio" });
    const { functions, consoleId } = netFunctionsOf(r, 1);
    assert.deepEqual(functions.map((f) => f.factory), ["virtioRngBackend", "virtioConsoleBackend"]);
    assert.ok(consoleId !== undefined);
    const input = consoleInput(consoleId!);
    assert.equal(input(new Uint8Array([1])), 0, "no console built yet");
    const types: number[] = [];
    for (const [i, f] of functions.entries()) {
      const spec = await prepareVirtioBackend(loop, {
        id: 900_000 + i,
        module: f.module,
        factory: f.factory,
        args: f.args,
      });
      types.push(spec.deviceType);
    }
    assert.deepEqual(types, [VIRTIO_ID_RNG, VIRTIO_ID_CONSOLE]);
    // Built, but the driver has posted no buffers: nothing is taken yet.
    assert.equal(input(new Uint8Array([1])), 0);
    for (let i = 0; i < functions.length; i++) await stopVirtioBackend(loop, 900_000 + i);
  } finally {
    loop.close();
  }
});
