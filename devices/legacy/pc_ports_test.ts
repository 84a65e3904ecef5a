import assert from "node:assert/strict";
import { FakeIrqLine } from "../irq.ts";
import {
  AcpiPm,
  DebugExit,
  initPcPortsState,
  PC_PORTS_STATE_BYTES,
  Port92,
  PostPort,
  ResetControl,
} from "./pc_ports.ts";
import { RecordingSystemEvents } from "./system_events.ts";

function setup() {
  const clock = { ms: 1000 };
  const region = { sab: new SharedArrayBuffer(48), offset: 8, length: PC_PORTS_STATE_BYTES };
  initPcPortsState(region, () => clock.ms);
  const events = new RecordingSystemEvents();
  return { region, events, clock };
}
const u8 = (...b: number[]) => new Uint8Array(b);

Deno.test("port 0x80 swallows POST codes and delays", () => {
  const { region } = setup();
  const post = new PostPort(region);
  post.write(0, u8(0x55));
  post.write(0, u8());
  assert.equal(post.lastCode, 0x55);
  const d = new Uint8Array(2);
  post.read(0, d);
  assert.deepEqual([...d], [0x55, 0x55]);
});

Deno.test("port 0x92 resets on a rising bit 0 and keeps A20", () => {
  const { region, events } = setup();
  const p = new Port92(region, { events });
  const d = new Uint8Array(1);
  p.read(0, d);
  assert.equal(d[0], 0x02);
  p.write(0, u8(0x00));
  p.read(0, d);
  assert.equal(d[0], 0x00);
  assert.deepEqual(events.events, []);
  p.write(0, u8(0x01));
  p.write(0, u8(0x03)); // still set: no second edge
  assert.deepEqual(events.events, ["reset"]);
  p.write(0, u8(0xfe));
  p.read(0, d);
  assert.equal(d[0], 0x02);
});

Deno.test("port 0xcf9 resets when RST_CPU is written, as Linux's reboot=pci does", () => {
  const { region, events } = setup();
  const rc = new ResetControl(region, { events });
  rc.write(0, u8(0x02));
  assert.deepEqual(events.events, []);
  const d = new Uint8Array(1);
  rc.read(0, d);
  assert.equal(d[0], 0x02);
  rc.write(0, u8(0x06));
  rc.write(0, u8(0x0e));
  assert.deepEqual(events.events, ["reset", "reset"]);
  rc.read(0, d);
  assert.equal(d[0], 0x0a, "RST_CPU self-clears");
});

Deno.test("ACPI PM1 control: SLP_EN with the S5 type powers off; SCI_EN reads set", () => {
  const { region, events } = setup();
  const pm = new AcpiPm(region, { events });
  const w = new Uint8Array(2);
  pm.read(4, w);
  assert.equal(w[0] & 1, 1);
  pm.write(4, u8(0x00, 0x04)); // SLP_TYP=1 without SLP_EN
  pm.write(4, u8(0x00, 0x24)); // S1 with SLP_EN: not supported, ignored
  assert.deepEqual(events.events, []);
  pm.read(4, w);
  assert.equal(w[1] & 0x20, 0, "SLP_EN reads as 0");
  pm.write(4, u8(0x01, 0x34)); // S5 (5 << 10) | SLP_EN
  assert.deepEqual(events.events, ["shutdown"]);
  // Byte-wide writes: the type first, then SLP_EN in the high byte.
  pm.write(5, u8(0x14));
  pm.write(5, u8(0x34));
  assert.deepEqual(events.events, ["shutdown", "shutdown"]);
  const qemu = new AcpiPm(region, { events, s5SleepType: 0 });
  qemu.write(4, u8(0x00, 0x20));
  assert.deepEqual(events.events, ["shutdown", "shutdown", "shutdown"]);
});

Deno.test("ACPI power button raises the SCI while enabled; W1C clears it", () => {
  const { region, events } = setup();
  const sci = new FakeIrqLine();
  const pm = new AcpiPm(region, { events, sci });
  assert.equal(pm.pressPowerButton(), false);
  assert.equal(sci.level, false);
  const w = new Uint8Array(2);
  pm.read(0, w);
  assert.equal(w[1], 0x01, "PWRBTN_STS set");
  pm.write(2, u8(0x00, 0x01)); // PWRBTN_EN
  assert.equal(sci.level, true);
  pm.write(0, u8(0x00, 0x00)); // writing 0 clears nothing
  assert.equal(sci.level, true);
  pm.write(0, u8(0x00, 0x01));
  assert.equal(sci.level, false);
  assert.equal(pm.pressPowerButton(), true);
  assert.equal(sci.level, true);
});

Deno.test("ACPI PM timer counts 3.579545 MHz in 24 bits", () => {
  const { region, events, clock } = setup();
  const pm = new AcpiPm(region, { events, now: () => clock.ms });
  const t = new Uint8Array(4);
  pm.read(8, t);
  assert.deepEqual([...t], [0, 0, 0, 0]);
  clock.ms += 1;
  pm.read(8, t);
  assert.equal(new DataView(t.buffer).getUint32(0, true), 3579);
  clock.ms += 10_000; // wraps at 2^24
  pm.read(8, t);
  assert.equal(new DataView(t.buffer).getUint32(0, true), Math.floor(10001 * 3579.545) % 2 ** 24);
  const hi = new Uint8Array(1);
  pm.read(10, hi);
  assert.equal(hi[0], t[2]);
  pm.read(6, hi);
  assert.equal(hi[0], 0xff);
  pm.write(8, u8(1, 2, 3, 4)); // read-only
  pm.read(8, t);
  assert.equal(new DataView(t.buffer).getUint32(0, true), Math.floor(10001 * 3579.545) % 2 ** 24);
  // Another thread whose clock lags a little never sees it go back.
  const lagging = new AcpiPm(region, { events, now: () => clock.ms - 0.5 });
  const t2 = new Uint8Array(4);
  lagging.read(8, t2);
  assert.deepEqual(t2, t);
});

Deno.test("isa-debug-exit turns a write of v into exit status (v << 1) | 1", () => {
  const events = new RecordingSystemEvents();
  const dev = new DebugExit({ events });
  dev.write(0, u8(0));
  dev.write(0, u8(0x10));
  dev.write(0, u8(0x01, 0x01, 0, 0)); // 0x101: truncated like exit()
  dev.write(0, u8(0x7f));
  assert.deepEqual(events.events, ["exit:1", "exit:33", "exit:3", "exit:255"]);
  const d = new Uint8Array(1);
  dev.read(0, d);
  assert.equal(d[0], 0);
});
