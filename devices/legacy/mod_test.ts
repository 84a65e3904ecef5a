import assert from "node:assert/strict";
import { Bus } from "../bus.ts";
import { FakeIrqLine } from "../irq.ts";
import {
  createLegacyDevices,
  createLegacyState,
  insertLegacyDevices,
  LEGACY_GSI,
  RecordingSystemEvents,
} from "./mod.ts";

function build(state = createLegacyState({ memoryBelow4g: 256 << 20, cpus: 2 })) {
  const irqs = new Map<number, FakeIrqLine>();
  const out: number[] = [];
  const events = new RecordingSystemEvents();
  const legacy = createLegacyDevices(state, {
    irq: (gsi) => {
      const line = new FakeIrqLine();
      irqs.set(gsi, line);
      return line;
    },
    sink: (b) => out.push(b),
    events,
  });
  const bus = new Bus();
  insertLegacyDevices(bus, legacy);
  return { state, legacy, bus, irqs, out, events };
}

const b1 = new Uint8Array(1);
function outb(bus: Bus, port: number, v: number): void {
  b1[0] = v;
  assert.ok(bus.write(port, b1), `port 0x${port.toString(16)} claimed`);
}
function inb(bus: Bus, port: number): number {
  assert.ok(bus.read(port, b1), `port 0x${port.toString(16)} claimed`);
  return b1[0];
}

Deno.test("legacy set claims the PC ports and leaves the PIT's alone", () => {
  const { bus, legacy, irqs } = build();
  for (const port of [0x40, 0x43, 0x61, 0x20, 0xa0, 0x2f8, 0xcf8, 0xcfc]) {
    assert.equal(bus.read(port, b1), false, `0x${port.toString(16)} must stay unclaimed`);
  }
  assert.deepEqual([...irqs.keys()].sort((a, b) => a - b), [1, 4, 9, 12]);
  assert.equal(legacy.entries.length, 9);
  // A PCI host bridge claiming 0xcf8 with size 1 fits beside 0xcf9.
  bus.insert({ read: () => {}, write: () => {} }, 0xcf8, 1);
  const noCf9 = build().legacy;
  const pciBus = new Bus();
  pciBus.insert({ read: () => {}, write: () => {} }, 0xcf8, 8);
  assert.doesNotThrow(() => {
    for (const e of noCf9.entries) {
      if (e.name !== "reset-control") pciBus.insert(e.device, e.base, e.size);
    }
  });
});

Deno.test("legacy devices answer through the bus", () => {
  const { bus, out, events, irqs } = build();
  for (const c of "ok\n") outb(bus, 0x3f8, c.charCodeAt(0));
  assert.equal(String.fromCharCode(...out), "ok\n");
  outb(bus, 0x3f9, 0x02);
  assert.equal(irqs.get(LEGACY_GSI.COM1)!.level, true);
  outb(bus, 0x64, 0xaa);
  assert.equal(inb(bus, 0x64) & 1, 1);
  assert.equal(inb(bus, 0x60), 0x55);
  outb(bus, 0x70, 0x5f);
  assert.equal(inb(bus, 0x71), 1, "two CPUs");
  outb(bus, 0x80, 0x12);
  outb(bus, 0x64, 0xfe);
  outb(bus, 0xcf9, 0x06);
  outb(bus, 0x92, 0x03);
  outb(bus, 0xf4, 0x00);
  bus.write(0x604, new Uint8Array([0x00, 0x34]));
  assert.deepEqual(events.events, ["reset", "reset", "reset", "exit:1", "shutdown"]);
});

Deno.test("legacy state is shared with a vCPU Worker under the big lock", async () => {
  const main = build();
  const modUrl = new URL("./mod.ts", import.meta.url).href;
  const irqUrl = new URL("../irq.ts", import.meta.url).href;
  const busUrl = new URL("../bus.ts", import.meta.url).href;
  const code = `
    import { createLegacyDevices, insertLegacyDevices, RecordingSystemEvents } from ${
    JSON.stringify(modUrl)
  };
    import { FakeIrqLine } from ${JSON.stringify(irqUrl)};
    import { Bus } from ${JSON.stringify(busUrl)};
    self.onmessage = (e) => {
      const out = [];
      const legacy = createLegacyDevices(e.data, {
        irq: () => new FakeIrqLine(), sink: (b) => out.push(b), events: new RecordingSystemEvents(),
      });
      const bus = new Bus();
      insertLegacyDevices(bus, legacy);
      const b = new Uint8Array(1);
      const got = [];
      const deadline = Date.now() + 10000;
      while (got.length < 100 && Date.now() < deadline) {
        legacy.lock.lock();
        b[0] = 0x2a; bus.write(0x3ff, b);           // scratch
        bus.read(0x3fd, b);                           // LSR
        if (b[0] & 1) { bus.read(0x3f8, b); got.push(b[0]); }
        legacy.lock.unlock();
      }
      self.postMessage({ got });
    };`;
  const url = URL.createObjectURL(new Blob([code], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  try {
    const done = new Promise<{ got: number[] }>((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => reject(e);
    });
    // FIFO on, then feed input from "the main loop" while the Worker polls.
    main.legacy.lock.with(() => outb(main.bus, 0x3fa, 0x01));
    worker.postMessage(main.state);
    const sent: number[] = [];
    let finished = false;
    done.then(() => finished = true, () => finished = true);
    const input = new Uint8Array(1);
    while (!finished) {
      input[0] = sent.length;
      if (sent.length < 150 && main.legacy.serial.enqueueInput(input) === 1) sent.push(input[0]);
      await new Promise((r) => setTimeout(r, 0));
    }
    const { got } = await done;
    assert.equal(got.length, 100);
    assert.deepEqual(got, sent.slice(0, 100), "bytes arrive in order, none lost or duplicated");
    assert.equal(main.legacy.lock.with(() => inb(main.bus, 0x3ff)), 0x2a);
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
  }
});
