// The PC devices' console output is batched per exit: bytes the guest
// writes to COM1 during one exit reach the console fd in one write, when the
// vCPU thread runs the devices' after-exit work.
import assert from "node:assert/strict";
import { pcDevices } from "./pc_devices.ts";
import { createLegacyState } from "../devices/legacy/mod.ts";
import { Bus } from "../devices/bus.ts";
import { FakeIrqLine } from "../devices/irq.ts";
import { RecordingSystemEvents } from "../devices/legacy/system_events.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import { closeFd, pipe, readInto } from "../sys/fd.ts";

Deno.test("COM1 bytes of one exit leave in one write at the end of the exit", () => {
  const [r, w] = pipe(true);
  const flushers: (() => void)[] = [];
  try {
    const maps = pcDevices({ legacy: createLegacyState() }, {
      memory: GuestMemory.fromBuffer(new ArrayBuffer(4096)),
      consoleFd: w,
      irq: () => new FakeIrqLine(),
      events: new RecordingSystemEvents(),
      afterExit: (f) => void flushers.push(f),
    });
    const pio = new Bus();
    for (const m of maps) pio.insert(m.device, m.base, m.size);
    const buf = new Uint8Array(64);
    // A `rep outsb` of "hi\n": three THR writes in one exit.
    for (const b of new TextEncoder().encode("hi\n")) pio.write(0x3f8, new Uint8Array([b]));
    assert.equal(readInto(r, buf), -11, "nothing is written before the exit ends"); // EAGAIN
    assert.equal(flushers.length, 1);
    flushers[0]();
    assert.equal(new TextDecoder().decode(buf.subarray(0, readInto(r, buf))), "hi\n");
    flushers[0](); // nothing pending: no write
    assert.equal(readInto(r, buf), -11);
  } finally {
    closeFd(r);
    closeFd(w);
  }
});
