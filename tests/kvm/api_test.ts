// The public API on KVM with flat test guests: user-written PIO and MMIO
// devices run in the vCPU threads next to the PC devices, the guest's COM1
// output reaches vm.serial, debug-exit ends vm.wait(), pause() stops guest
// progress and resume() continues it, stop() ends a running guest.
import assert from "node:assert/strict";
import { createVm } from "../../mod.ts";
import { buildGuest, debugExitStatus } from "../../guests/guest.ts";
import { MMIO_OK_EXIT_CODE, MMIO_OK_OUTPUT, mmioRoundTrip } from "../../guests/mmio_round_trip.ts";
import type { AccumulatorArgs } from "./_user_devices.ts";
import type { TestDeviceArgs } from "./test_devices.ts";

const USER_DEVICES = new URL("./_user_devices.ts", import.meta.url).href;
const TEST_DEVICES = new URL("./test_devices.ts", import.meta.url).href;
const PORT = 0x510;

Deno.test("a user PIO device accumulates what the guest writes; debug-exit ends wait()", async () => {
  const guest = buildGuest(`
start:
    mov dx, 0x${PORT.toString(16)}
    mov al, 5
    out dx, al
    mov al, 7
    out dx, al
    in al, dx
    out 0xf4, al
.h: hlt
    jmp .h
`);
  const args: AccumulatorArgs = { sum: new SharedArrayBuffer(4), port: PORT };
  await using vm = await createVm({
    flat: { code: guest.code, loadAddr: guest.loadAddr, entry: guest.entry },
    memory: 1 << 20,
    devices: [{ module: USER_DEVICES, factory: "accumulatorPort", args }],
  });
  await vm.start();
  const end = await vm.wait();
  assert.deepEqual(end.errors, []);
  assert.equal(end.reason, "debug-exit");
  assert.equal(new Int32Array(args.sum)[0], 12);
  assert.equal(end.exitCode, debugExitStatus(12));
});

Deno.test("a user MMIO device answers a long-mode guest; COM1 output reaches vm.serial", async () => {
  const guest = mmioRoundTrip();
  const args: TestDeviceArgs = { echo: new SharedArrayBuffer(4) };
  await using vm = await createVm({
    flat: { code: guest.code, loadAddr: guest.loadAddr, entry: guest.entry },
    memory: 1 << 20,
    devices: [{ module: TEST_DEVICES, factory: "testDevices", args }],
  });
  const seen = vm.serial.waitFor(MMIO_OK_OUTPUT, { timeoutMs: 60_000 });
  await vm.start();
  const end = await vm.wait();
  assert.equal(end.exitCode, MMIO_OK_EXIT_CODE);
  await seen;
});

Deno.test("pause() stops a counting guest, resume() continues it, stop() ends it", async () => {
  // Counts forever into the accumulator port.
  const guest = buildGuest(`
start:
    mov dx, 0x${PORT.toString(16)}
    mov al, 1
.loop:
    out dx, al
    jmp .loop
`);
  const args: AccumulatorArgs = { sum: new SharedArrayBuffer(4), port: PORT };
  const sum = new Int32Array(args.sum);
  await using vm = await createVm({
    flat: { code: guest.code, loadAddr: guest.loadAddr, entry: guest.entry },
    memory: 1 << 20,
    devices: [{ module: USER_DEVICES, factory: "accumulatorPort", args }],
  });
  const events: string[] = [];
  vm.on("pause", (t) => events.push(t));
  vm.on("resume", (t) => events.push(t));
  await vm.start();
  assert.equal(vm.status, "running");
  const moving = async () => {
    const a = Atomics.load(sum, 0);
    await new Promise((r) => setTimeout(r, 300));
    return Atomics.load(sum, 0) !== a;
  };
  assert.ok(await moving(), "the guest should be counting");
  await vm.pause();
  assert.equal(vm.status, "paused");
  assert.equal(await moving(), false, "a paused guest must not count");
  vm.resume();
  assert.ok(await moving(), "a resumed guest counts again");
  assert.ok(vm.vcpuThreadIds[0] > 0);
  vm.stop();
  const end = await vm.wait();
  assert.equal(end.reason, "stopped");
  assert.equal(end.exitCode, 4);
  assert.deepEqual(events, ["pause", "resume"]);
});

Deno.test("reset() takes the machine apart and builds it again; the guest runs anew", async () => {
  const guest = buildGuest(`
start:
    mov dx, 0x${PORT.toString(16)}
    mov al, 1
.loop:
    out dx, al
    jmp .loop
`);
  const args: AccumulatorArgs = { sum: new SharedArrayBuffer(4), port: PORT };
  const sum = new Int32Array(args.sum);
  await using vm = await createVm({
    flat: { code: guest.code, loadAddr: guest.loadAddr, entry: guest.entry },
    memory: 1 << 20,
    devices: [{ module: USER_DEVICES, factory: "accumulatorPort", args }],
  });
  const resets: string[] = [];
  vm.on("reset", (t) => resets.push(t));
  await vm.start();
  const counting = async () => {
    const a = Atomics.load(sum, 0);
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
      if (Atomics.load(sum, 0) !== a) return true;
    }
    return false;
  };
  assert.ok(await counting());
  const before = vm.vcpuThreadIds[0];
  let ended = false;
  vm.wait().then(() => ended = true);
  vm.reset();
  for (let i = 0; i < 200 && resets.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(resets, ["reset"]);
  assert.equal(ended, false, "a reset is not an end");
  assert.equal(vm.status, "running");
  assert.ok(await counting(), "the rebuilt machine runs the guest again");
  assert.notEqual(vm.vcpuThreadIds[0], before, "new vCPU threads");
  vm.stop();
  assert.equal((await vm.wait()).reason, "stopped");
});
