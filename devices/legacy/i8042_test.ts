import assert from "node:assert/strict";
import { FakeIrqLine } from "../irq.ts";
import { I8042, I8042_STATE_BYTES } from "./i8042.ts";
import { RecordingSystemEvents } from "./system_events.ts";

function setup() {
  const region = {
    sab: new SharedArrayBuffer(I8042_STATE_BYTES),
    offset: 0,
    length: I8042_STATE_BYTES,
  };
  I8042.initState(region);
  const kbdIrq = new FakeIrqLine();
  const auxIrq = new FakeIrqLine();
  const events = new RecordingSystemEvents();
  const kbc = new I8042(region, { kbdIrq, auxIrq, events });
  return { kbc, kbdIrq, auxIrq, events };
}

/** Linux's i8042_command: command byte, parameters, then poll for replies. */
function command(kbc: I8042, cmd: number, params: number[] = [], replies = 0): number[] {
  assert.equal(kbc.readStatus() & 0x02, 0, "input buffer never busy");
  kbc.writeCommand(cmd);
  for (const p of params) kbc.writeData(p);
  const out: number[] = [];
  for (let i = 0; i < replies; i++) {
    assert.equal(kbc.readStatus() & 0x01, 1, `reply ${i} to 0x${cmd.toString(16)} missing`);
    out.push(kbc.readData());
  }
  return out;
}

Deno.test("i8042 passes Linux's probe: flush, self-test, CTR round trip, keylock", () => {
  const { kbc } = setup();
  assert.equal(kbc.readStatus() & 0x01, 0, "nothing to flush");
  assert.equal(kbc.readStatus() & 0x10, 0x10, "keyboard not locked");
  assert.notEqual(kbc.readStatus(), 0xff);
  assert.deepEqual(command(kbc, 0xaa, [], 1), [0x55]);
  const [ctr] = command(kbc, 0x20, [], 1);
  assert.equal(ctr, 0x47);
  command(kbc, 0x60, [(ctr | 0x10) & ~0x01]);
  assert.deepEqual(command(kbc, 0x20, [], 1), [0x46 | 0x10]);
  assert.equal(kbc.readStatus() & 0x01, 0);
});

Deno.test("i8042 AUX loop answers on the AUX side and the MUX probe fails", () => {
  const { kbc, auxIrq } = setup();
  kbc.writeCommand(0xd3);
  kbc.writeData(0x5a);
  assert.equal(kbc.readStatus() & 0x21, 0x21, "OBF with AUXDATA");
  assert.equal(auxIrq.level, true, "AUXINT is on after power-up");
  assert.equal(kbc.readData(), 0x5a);
  assert.equal(auxIrq.level, false);
  // toggle_aux: disable/enable visible in the CTR
  command(kbc, 0xa7);
  assert.equal(command(kbc, 0x20, [], 1)[0] & 0x20, 0x20);
  command(kbc, 0xa8);
  assert.equal(command(kbc, 0x20, [], 1)[0] & 0x20, 0);
  // i8042_set_mux_mode: f0, 56 echo; a4 must come back different for a MUX
  assert.deepEqual(command(kbc, 0xd3, [0xf0], 1), [0xf0]);
  assert.deepEqual(command(kbc, 0xd3, [0x56], 1), [0x56]);
  assert.deepEqual(command(kbc, 0xd3, [0xa4], 1), [0xa4], "same byte: no MUX");
});

/** Reads the output buffer dry: [byte, AUXDATA?] pairs. */
function readAll(kbc: I8042): [number, boolean][] {
  const out: [number, boolean][] = [];
  for (let st = kbc.readStatus(); st & 0x01; st = kbc.readStatus()) {
    out.push([kbc.readData(), (st & 0x20) !== 0]);
  }
  return out;
}

Deno.test("i8042 AUX port: 0xd4 bytes reach the mouse, replies come back as AUX data on IRQ 12", () => {
  const { kbc, kbdIrq, auxIrq } = setup();
  command(kbc, 0xd4, [0xf2]);
  assert.equal(kbc.readStatus() & 0x61, 0x21, "OBF and AUXDATA, no TIMEOUT");
  assert.equal(auxIrq.level, true);
  assert.equal(kbc.readData(), 0xfa);
  assert.equal(auxIrq.level, true, "the ID follows the ACK");
  assert.equal(kbc.readData(), 0x00);
  assert.equal(auxIrq.level, false);
  assert.equal(auxIrq.raised, 2, "one edge per byte");
  assert.equal(kbdIrq.raised, 0);
  // psmouse: reset (ACK, BAT, ID), the IntelliMouse knock, enable.
  command(kbc, 0xd4, [0xff]);
  assert.deepEqual(readAll(kbc), [[0xfa, true], [0xaa, true], [0x00, true]]);
  for (const rate of [200, 100, 80]) command(kbc, 0xd4, [0xf3]), command(kbc, 0xd4, [rate]);
  command(kbc, 0xd4, [0xf2]);
  assert.deepEqual(readAll(kbc).map(([b]) => b), [0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0x03]);
  command(kbc, 0xd4, [0xf4]);
  assert.deepEqual(readAll(kbc), [[0xfa, true]]);
  kbc.pushMouse(3, -2, 1, 0b001);
  assert.equal(auxIrq.level, true);
  assert.deepEqual(readAll(kbc).map(([b]) => b), [0x09, 3, 2, 1]);
  assert.equal(kbdIrq.raised, 0, "mouse bytes never raise IRQ 1");
  assert.equal(auxIrq.level, false);
});

Deno.test("i8042 holds mouse bytes while the AUX port is disabled; 0xa8 and 0xd4 enable it", () => {
  const { kbc, auxIrq } = setup();
  command(kbc, 0xd4, [0xf4]);
  assert.deepEqual(readAll(kbc), [[0xfa, true]]);
  command(kbc, 0xa7);
  kbc.pushMouse(1, 0, 0, 0);
  assert.equal(kbc.readStatus() & 0x01, 0, "nothing while the clock line is held");
  assert.equal(auxIrq.level, false);
  command(kbc, 0xa8);
  assert.equal(auxIrq.level, true);
  assert.deepEqual(readAll(kbc).map(([b]) => b), [0x08, 1, 0]);
  // The control register's AUXDIS bit does the same; a write to the mouse clears it.
  command(kbc, 0x60, [0x47 | 0x20]);
  kbc.pushMouse(2, 0, 0, 0);
  assert.equal(kbc.readStatus() & 0x01, 0);
  command(kbc, 0xd4, [0xe9]);
  assert.deepEqual(readAll(kbc).map(([b]) => b), [0x08, 2, 0, 0xfa, 0x20, 2, 100]);
  assert.equal(command(kbc, 0x20, [], 1)[0] & 0x20, 0, "0xd4 re-enabled the port");
  // AUXINT off: data still shows in the status register, IRQ 12 stays low.
  command(kbc, 0x60, [0x45]);
  kbc.pushMouse(1, 0, 0, 0);
  assert.equal(kbc.readStatus() & 0x21, 0x21);
  assert.equal(auxIrq.level, false);
  command(kbc, 0x60, [0x47]);
  assert.equal(auxIrq.level, true, "turning AUXINT on raises the line for the waiting byte");
});

Deno.test("i8042 interleaves keyboard and mouse bytes, each with its status bit and IRQ", () => {
  const { kbc, kbdIrq, auxIrq } = setup();
  command(kbc, 0xd4, [0xf4]);
  readAll(kbc);
  assert.equal(kbc.pushKeyboard(new Uint8Array([0x1e, 0x9e])), 2);
  kbc.pushMouse(-1, 0, 0, 0b010);
  assert.equal(kbdIrq.level, true);
  assert.equal(auxIrq.level, false);
  assert.equal(kbc.readData(), 0x1e);
  assert.equal(kbc.readData(), 0x9e);
  // Keys pressed while a mouse packet is going out queue behind its byte.
  assert.equal(auxIrq.level, true);
  assert.equal(kbdIrq.level, false);
  assert.equal(kbc.pushKeyboard(new Uint8Array([0x30])), 1);
  assert.deepEqual(readAll(kbc), [[0x18 | 0x02, true], [0x30, false], [0xff, true], [0x00, true]]);
  assert.deepEqual([kbdIrq.raised, auxIrq.raised], [3, 1 + 3], "the enable's ACK, then the packet");
  assert.equal(kbdIrq.level || auxIrq.level, false);
});

Deno.test("i8042 keeps a mouse flood bounded and answers commands through it", () => {
  const { kbc } = setup();
  command(kbc, 0xd4, [0xf4]);
  readAll(kbc);
  for (let i = 0; i < 10_000; i++) kbc.pushMouse(1, 1, 0, i & 1);
  assert.ok(kbc.mouse.pending <= 256);
  const stats = kbc.mouse.stats();
  assert.ok(stats.coalesced > 9000, `coalesced ${stats.coalesced}`);
  // The controller's own replies go out between mouse bytes.
  assert.deepEqual(command(kbc, 0xaa, [], 2).map((b) => b === 0x55), [false, true]);
});

Deno.test("i8042 keyboard answers atkbd's probe and raises IRQ 1 per byte", () => {
  const { kbc, kbdIrq } = setup();
  kbc.writeData(0xf2);
  assert.equal(kbdIrq.level, true);
  const id = [kbc.readData(), kbc.readData(), kbc.readData()];
  assert.deepEqual(id, [0xfa, 0xab, 0x41]);
  assert.equal(kbdIrq.raised, 3, "one edge per byte");
  assert.equal(kbdIrq.level, false);
  kbc.writeData(0xed);
  kbc.writeData(0x00);
  assert.deepEqual([kbc.readData(), kbc.readData()], [0xfa, 0xfa]);
  kbc.writeData(0xf0);
  kbc.writeData(0x00);
  assert.deepEqual([kbc.readData(), kbc.readData(), kbc.readData()], [0xfa, 0xfa, 0x02]);
  kbc.writeData(0xff);
  assert.deepEqual([kbc.readData(), kbc.readData()], [0xfa, 0xaa]);
  kbc.writeData(0xee);
  assert.equal(kbc.readData(), 0xee);
  kbc.writeData(0xf4);
  assert.equal(kbc.readData(), 0xfa);
  kbc.writeData(0x12);
  assert.equal(kbc.readData(), 0xfe);
  assert.equal(kbc.readData(), 0xfe, "an empty buffer repeats the last byte");
  // Non-translated mode reports the raw ID.
  command(kbc, 0x60, [0x03]);
  kbc.writeData(0xf2);
  assert.deepEqual([kbc.readData(), kbc.readData(), kbc.readData()], [0xfa, 0xab, 0x83]);
});

Deno.test("i8042 keeps the IRQ low while the control register masks it", () => {
  const { kbc, kbdIrq } = setup();
  command(kbc, 0x60, [0x44]);
  kbc.writeData(0xff);
  assert.equal(kbdIrq.level, false);
  command(kbc, 0x60, [0x45]);
  assert.equal(kbdIrq.level, true);
});

Deno.test("i8042 reset paths: 0xfe pulse and output port bit 0", () => {
  const { kbc, events } = setup();
  kbc.writeCommand(0xff); // pulse nothing
  assert.deepEqual(events.events, []);
  kbc.writeCommand(0xfe);
  assert.deepEqual(events.events, ["reset"]);
  assert.deepEqual(command(kbc, 0xd0, [], 1), [0x03]);
  command(kbc, 0xdd);
  assert.deepEqual(command(kbc, 0xd0, [], 1), [0x01]);
  command(kbc, 0xd1, [0x03]);
  assert.deepEqual(events.events, ["reset"]);
  command(kbc, 0xd1, [0x02]);
  assert.deepEqual(events.events, ["reset", "reset"]);
});

Deno.test("i8042 survives a flood and odd access sizes", () => {
  const { kbc } = setup();
  for (let i = 0; i < 100; i++) kbc.writeCommand(0xaa);
  let n = 0;
  while (kbc.readStatus() & 1) {
    kbc.readData();
    n++;
  }
  assert.equal(n, 16);
  const wide = new Uint8Array(4);
  kbc.commandPort.read(0, wide);
  assert.deepEqual([...wide.subarray(1)], [0xff, 0xff, 0xff]);
  kbc.commandPort.write(0, new Uint8Array(0));
  kbc.dataPort.write(0, new Uint8Array([0xee, 1, 2]));
  kbc.dataPort.read(0, wide);
  assert.equal(wide[0], 0xee);
  kbc.writeCommand(0x61); // RAM byte 1: swallowed
  kbc.writeData(0x99);
  assert.equal(kbc.readStatus() & 1, 0);
  kbc.writeCommand(0x3f);
  assert.equal(kbc.readData(), 0);
});

Deno.test("host key bytes come out of port 0x60 with the keyboard IRQ, up to half the buffer", () => {
  const { kbc, kbdIrq, auxIrq } = setup();
  assert.equal(kbc.translating, true);
  const bytes = new Uint8Array(12).map((_, i) => 0x10 + i);
  assert.equal(kbc.pushKeyboard(bytes), 8);
  assert.equal(kbdIrq.level, true);
  assert.equal(auxIrq.level, false);
  const got: number[] = [];
  while (kbc.readStatus() & 0x01) {
    assert.equal(kbc.readStatus() & 0x20, 0, "keyboard bytes are not AUX data");
    got.push(kbc.readData());
  }
  assert.deepEqual(got, [...bytes.subarray(0, 8)]);
  assert.equal(kbdIrq.level, false);
  // A disabled keyboard (CTR bit 4) takes nothing; neither does one awaiting a command parameter.
  command(kbc, 0x60, [0x47 | 0x10]);
  assert.equal(kbc.pushKeyboard(bytes), 0);
  command(kbc, 0x60, [0x47]);
  kbc.writeData(0xed); // SET_LEDS waits for its parameter
  assert.equal(kbc.readData(), 0xfa);
  assert.equal(kbc.pushKeyboard(bytes), 0);
  kbc.writeData(0x00);
  assert.equal(kbc.readData(), 0xfa);
  assert.equal(kbc.pushKeyboard(bytes.subarray(0, 2)), 2);
});
