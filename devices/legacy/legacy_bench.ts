/**
 * Per-exit costs of the legacy devices, in-thread (no KVM): what a vCPU
 * Worker spends in device code for one PIO exit.
 */
import { Bus } from "../bus.ts";
import { FakeIrqLine } from "../irq.ts";
import { createLegacyDevices, createLegacyState, insertLegacyDevices } from "./mod.ts";
import { RecordingSystemEvents } from "./system_events.ts";

const state = createLegacyState({ memoryBelow4g: 256 << 20 });
let sunk = 0;
const legacy = createLegacyDevices(state, {
  irq: () => new FakeIrqLine(),
  sink: (b) => {
    sunk += b;
  },
  events: new RecordingSystemEvents(),
});
const bus = new Bus();
insertLegacyDevices(bus, legacy);
const b = new Uint8Array(1);
const input = new Uint8Array(16);

Deno.bench("big lock: uncontended lock + unlock", () => {
  legacy.lock.lock();
  legacy.lock.unlock();
});

Deno.bench("serial: THR write through bus under the lock (IER.THRI on)", {
  baseline: true,
}, (t) => {
  b[0] = 0x02;
  bus.write(0x3f9, b);
  t.start();
  for (let i = 0; i < 1000; i++) {
    legacy.lock.lock();
    b[0] = 0x41;
    bus.write(0x3f8, b);
    legacy.lock.unlock();
  }
  t.end();
});

Deno.bench("serial: LSR poll read through bus under the lock", (t) => {
  t.start();
  for (let i = 0; i < 1000; i++) {
    legacy.lock.lock();
    bus.read(0x3fd, b);
    legacy.lock.unlock();
  }
  t.end();
});

Deno.bench("serial: enqueue 16 bytes, guest drains them (16 LSR + 16 RBR)", () => {
  b[0] = 0x01;
  bus.write(0x3fa, b);
  legacy.serial.enqueueInput(input);
  legacy.lock.lock();
  for (let i = 0; i < 16; i++) {
    bus.read(0x3fd, b);
    bus.read(0x3f8, b);
  }
  legacy.lock.unlock();
});

Deno.bench("rtc: CMOS_READ of seconds (index write + data read)", () => {
  b[0] = 0;
  bus.write(0x70, b);
  bus.read(0x71, b);
});

Deno.bench("acpi pm timer read (4 bytes)", () => {
  bus.read(0x608, input.subarray(0, 4));
});
