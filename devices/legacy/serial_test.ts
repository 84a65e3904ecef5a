import assert from "node:assert/strict";
import { FakeIrqLine } from "../irq.ts";
import { BigLock } from "../big_lock.ts";
import { Serial, SERIAL_FIFO_SIZE, SERIAL_STATE_BYTES } from "./serial.ts";

const RBR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
const buf = new Uint8Array(1);

function rd(u: Serial, reg: number): number {
  u.read(reg, buf);
  return buf[0];
}
function wr(u: Serial, reg: number, v: number): void {
  buf[0] = v;
  u.write(reg, buf);
}

function setup(opts: { onAcceptInput?: () => void } = {}) {
  const region = { sab: new SharedArrayBuffer(64), offset: 8, length: SERIAL_STATE_BYTES };
  Serial.initState(region);
  const irq = new FakeIrqLine();
  const out: number[] = [];
  const uart = new Serial(region, { irq, sink: (b) => out.push(b), ...opts });
  return { region, irq, out, uart };
}

Deno.test("serial power-on state", () => {
  const { uart, irq } = setup();
  assert.equal(rd(uart, IER), 0);
  assert.equal(rd(uart, IIR), 0x01);
  assert.equal(rd(uart, LSR), 0x60);
  assert.equal(rd(uart, MSR), 0xb0);
  assert.equal(rd(uart, LCR), 0);
  assert.equal(rd(uart, MCR), 0);
  assert.equal(rd(uart, RBR), 0);
  assert.equal(irq.level, false);
  assert.equal(uart.rxSpace(), 1);
});

Deno.test("serial THR bytes go to the sink; no interrupt while IER is 0", () => {
  const { uart, irq, out } = setup();
  for (const c of "hi\n") wr(uart, 0, c.charCodeAt(0));
  assert.equal(String.fromCharCode(...out), "hi\n");
  assert.equal(irq.raised, 0);
  assert.equal(rd(uart, LSR) & 0x60, 0x60);
});

Deno.test("serial divisor latch shadows RBR/THR and IER while DLAB is set", () => {
  const { uart, out } = setup();
  wr(uart, LCR, 0x80);
  assert.equal(rd(uart, 0), 12);
  assert.equal(rd(uart, 1), 0);
  wr(uart, 0, 0x01);
  wr(uart, 1, 0x02);
  assert.equal(out.length, 0);
  wr(uart, LCR, 0x03);
  assert.equal(rd(uart, IER), 0);
  wr(uart, LCR, 0x83);
  assert.equal(rd(uart, 0), 0x01);
  assert.equal(rd(uart, 1), 0x02);
  assert.equal(rd(uart, LCR), 0x83);
});

Deno.test("serial IER keeps only its low nibble (Linux's XScale UUE probe)", () => {
  const { uart } = setup();
  wr(uart, IER, 0xff);
  assert.equal(rd(uart, IER), 0x0f);
  wr(uart, IER, 0x40);
  assert.equal(rd(uart, IER) & 0x40, 0);
});

Deno.test("serial THRI follows the 16550 re-arm rules Linux's THRE test uses", () => {
  const { uart, irq } = setup();
  // serial8250_do_startup: IER=THRI, read IIR, IER=0, IER=THRI, read IIR.
  wr(uart, IER, 0x02);
  assert.equal(irq.level, true);
  const iir1 = rd(uart, IIR);
  assert.equal(iir1 & 0x0f, 0x02);
  assert.equal(irq.level, false, "reading IIR with THRI acknowledges it");
  assert.equal(rd(uart, IIR) & 0x0f, 0x01);
  wr(uart, IER, 0x02); // no change: stays acknowledged
  assert.equal(rd(uart, IIR) & 0x0f, 0x01);
  wr(uart, IER, 0);
  wr(uart, IER, 0x02);
  assert.equal(rd(uart, IIR) & 0x0f, 0x02, "rising edge of IER.THRI re-arms");
  // Each transmitted byte re-arms it (THR empties at once).
  wr(uart, 0, 0x41);
  assert.equal(irq.level, true);
  assert.equal(rd(uart, IIR) & 0x0f, 0x02);
  assert.equal(irq.level, false);
  // Disabling THRI drops a pending THRE interrupt.
  wr(uart, 0, 0x42);
  assert.equal(irq.level, true);
  wr(uart, IER, 0);
  assert.equal(irq.level, false);
  assert.equal(irq.raised, 4);
});

Deno.test("serial receive: FIFO off holds one byte, FIFO on sixteen", () => {
  const { uart, irq } = setup();
  wr(uart, IER, 0x01);
  assert.equal(uart.enqueueInput(new Uint8Array([1, 2, 3])), 1);
  assert.equal(irq.level, true);
  assert.equal(rd(uart, LSR) & 0x01, 1);
  assert.equal(rd(uart, IIR), 0x04);
  assert.equal(rd(uart, RBR), 1);
  assert.equal(rd(uart, LSR) & 0x01, 0);
  assert.equal(irq.level, false);
  assert.equal(rd(uart, IIR), 0x01);

  wr(uart, FCR, 0x07); // enable + clear, trigger level 1
  assert.equal(rd(uart, IIR) & 0xc0, 0xc0);
  const input = new Uint8Array(20).map((_, i) => i + 10);
  assert.equal(uart.enqueueInput(input), SERIAL_FIFO_SIZE);
  assert.equal(uart.rxSpace(), 0);
  assert.equal(rd(uart, IIR), 0xc4);
  const got: number[] = [];
  while (rd(uart, LSR) & 0x01) got.push(rd(uart, RBR));
  assert.deepEqual(got, [...input.subarray(0, 16)]);
  assert.equal(irq.level, false);
  // It keeps going around the ring.
  assert.equal(uart.enqueueInput(input.subarray(16)), 4);
  assert.deepEqual([rd(uart, RBR), rd(uart, RBR), rd(uart, RBR), rd(uart, RBR)], [26, 27, 28, 29]);
});

Deno.test("serial reports a character timeout below the FIFO trigger level", () => {
  const { uart } = setup();
  wr(uart, IER, 0x01);
  wr(uart, FCR, 0x81); // trigger at 8
  uart.enqueueInput(new Uint8Array([1, 2, 3]));
  assert.equal(rd(uart, IIR), 0xcc);
  uart.enqueueInput(new Uint8Array(5));
  assert.equal(rd(uart, IIR), 0xc4);
  wr(uart, FCR, 0x83); // clear receiver
  assert.equal(rd(uart, LSR) & 0x01, 0);
  assert.equal(rd(uart, IIR), 0xc1);
  wr(uart, FCR, 0x00); // FIFOs off
  assert.equal(rd(uart, IIR), 0x01);
});

Deno.test("serial calls onAcceptInput once the guest drains a FIFO that refused input", () => {
  let calls = 0;
  const { uart } = setup({ onAcceptInput: () => calls++ });
  wr(uart, FCR, 0x01);
  uart.enqueueInput(new Uint8Array(4));
  for (let i = 0; i < 4; i++) rd(uart, RBR);
  assert.equal(calls, 0, "nothing was refused");
  assert.equal(uart.enqueueInput(new Uint8Array(17)), 16);
  for (let i = 0; i < 15; i++) rd(uart, RBR);
  assert.equal(calls, 0);
  rd(uart, RBR);
  assert.equal(calls, 1);
  rd(uart, RBR);
  assert.equal(calls, 1);
});

Deno.test("serial loopback: MSR mirrors MCR (Linux autoconfig) and THR feeds RBR", () => {
  const { uart, out, irq } = setup();
  wr(uart, MCR, 0x10 | 0x0a);
  assert.equal(rd(uart, MSR) & 0xf0, 0x90);
  wr(uart, MCR, 0x10 | 0x05);
  assert.equal(rd(uart, MSR), 0x60 | 0x01 | 0x02 | 0x08);
  assert.equal(rd(uart, MSR), 0x60, "deltas clear on read");
  wr(uart, MCR, 0x10 | 0x01); // OUT1 falls: trailing edge of RI
  assert.equal(rd(uart, MSR), 0x20 | 0x04);
  wr(uart, IER, 0x08);
  wr(uart, MCR, 0x10 | 0x03);
  assert.equal(irq.level, true);
  assert.equal(rd(uart, IIR), 0x00);
  rd(uart, MSR);
  assert.equal(irq.level, false);
  wr(uart, IER, 0);
  wr(uart, 0, 0x55);
  assert.equal(out.length, 0);
  assert.equal(rd(uart, LSR) & 0x01, 1);
  assert.equal(rd(uart, RBR), 0x55);
  wr(uart, MCR, 0x0b);
  assert.equal(rd(uart, MSR) & 0xf0, 0xb0);
  assert.equal(rd(uart, MCR), 0x0b);
});

Deno.test("serial interrupt priorities: line status, data, THRE, modem status", () => {
  const { uart, irq } = setup();
  wr(uart, MCR, 0x10);
  wr(uart, 0, 1); // fills the 1-byte receiver
  wr(uart, 0, 2); // overrun
  wr(uart, IER, 0x0f); // also arms THRI and... MSR deltas from loopback entry
  assert.equal(irq.level, true);
  assert.equal(rd(uart, IIR), 0x06);
  assert.equal(rd(uart, LSR) & 0x03, 0x03, "OE and DR");
  assert.equal(rd(uart, LSR) & 0x02, 0, "OE clears on read");
  assert.equal(rd(uart, IIR), 0x04);
  assert.equal(rd(uart, RBR), 1);
  assert.equal(rd(uart, IIR), 0x02);
  assert.equal(rd(uart, IIR), 0x00);
  rd(uart, MSR);
  assert.equal(rd(uart, IIR), 0x01);
  assert.equal(irq.level, false);
});

Deno.test("serial scratch register, wide and out-of-range accesses", () => {
  const { uart, out } = setup();
  wr(uart, SCR, 0xa5);
  assert.equal(rd(uart, SCR), 0xa5);
  const wide = new Uint8Array(4);
  uart.read(6, wide);
  assert.deepEqual([...wide], [0xb0, 0xa5, 0xff, 0xff]);
  uart.write(0, new Uint8Array([0x41, 0x00])); // THR then IER
  assert.deepEqual(out, [0x41]);
  uart.write(9, new Uint8Array([1]));
  wr(uart, LSR, 0);
  assert.equal(rd(uart, LSR), 0x60);
});

Deno.test("serial state is shared between instances (one per vCPU thread)", () => {
  const { region, uart, irq } = setup();
  const irq2 = new FakeIrqLine();
  const sab = region.sab;
  const other = new Serial({ sab, offset: region.offset, length: region.length }, {
    irq: irq2,
    sink: () => {},
    lock: new BigLock({ sab, offset: 0 }),
  });
  wr(uart, IER, 0x01);
  assert.equal(other.enqueueInput(new Uint8Array([7])), 1);
  assert.equal(irq2.level, true);
  assert.equal(uart.irqLevel, true);
  assert.equal(irq.level, false, "the line is raised once, by whoever changed it");
  assert.equal(rd(uart, RBR), 7);
  assert.equal(irq.raised, 0);
  assert.equal(other.irqLevel, false);
  other.reset();
  assert.equal(rd(uart, LSR), 0x60);
});
