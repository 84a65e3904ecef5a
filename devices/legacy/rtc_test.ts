import assert from "node:assert/strict";
import { Rtc, RTC_STATE_BYTES } from "./rtc.ts";

function setup(startMs: number, config = {}) {
  const clock = { ms: startMs };
  const region = {
    sab: new SharedArrayBuffer(RTC_STATE_BYTES + 8),
    offset: 8,
    length: RTC_STATE_BYTES,
  };
  Rtc.initState(region, config);
  const rtc = new Rtc(region, { now: () => clock.ms });
  return { rtc, clock, region };
}

const b = new Uint8Array(1);
/** The guest's CMOS_READ: outb(index, 0x70); inb(0x71). */
function cmosRead(rtc: Rtc, index: number): number {
  b[0] = index;
  rtc.write(0, b);
  rtc.read(1, b);
  return b[0];
}
function cmosWrite(rtc: Rtc, index: number, value: number): void {
  b[0] = index;
  rtc.write(0, b);
  b[0] = value;
  rtc.write(1, b);
}
function readTime(rtc: Rtc): number[] {
  return [0, 2, 4, 6, 7, 8, 9, 0x32].map((r) => cmosRead(rtc, r));
}

const T0 = Date.UTC(2026, 10, 25, 21, 45, 30, 100); // a Wednesday

Deno.test("rtc reads the host time in BCD, 24-hour, by default", () => {
  const { rtc } = setup(T0);
  assert.deepEqual(readTime(rtc), [0x30, 0x45, 0x21, 4, 0x25, 0x11, 0x26, 0x20]);
  assert.equal(cmosRead(rtc, 0x0a), 0x26);
  assert.equal(cmosRead(rtc, 0x0b), 0x02);
  assert.equal(cmosRead(rtc, 0x0d), 0x80);
});

Deno.test("rtc binary and 12-hour modes follow register B", () => {
  const { rtc } = setup(T0);
  cmosWrite(rtc, 0x0b, 0x06);
  assert.deepEqual(readTime(rtc), [30, 45, 21, 4, 25, 11, 26, 20]);
  cmosWrite(rtc, 0x0b, 0x04);
  assert.equal(cmosRead(rtc, 4), 0x80 | 9);
  cmosWrite(rtc, 0x0b, 0x00);
  assert.equal(cmosRead(rtc, 4), 0x89);
});

Deno.test("rtc UIP is set only just before a second boundary", () => {
  const { rtc, clock } = setup(T0);
  assert.equal(cmosRead(rtc, 0x0a) & 0x80, 0);
  clock.ms = T0 - 100 + 999;
  assert.equal(cmosRead(rtc, 0x0a) & 0x80, 0x80);
  // Linux's mc146818_avoid_UIP: a 1 ms delay gets past it.
  clock.ms += 1;
  assert.equal(cmosRead(rtc, 0x0a) & 0x80, 0);
  // A stopped divider never updates.
  cmosWrite(rtc, 0x0a, 0x76);
  clock.ms = T0 - 100 + 999;
  assert.equal(cmosRead(rtc, 0x0a), 0x76);
});

Deno.test("rtc setting the time with the SET bit, as rtc-cmos does", () => {
  const { rtc, clock } = setup(T0);
  cmosWrite(rtc, 0x0b, 0x82);
  clock.ms += 10_000; // frozen while SET
  assert.equal(cmosRead(rtc, 0), 0x30);
  cmosWrite(rtc, 0x0b, 0x92); // UIE is dropped while SET
  assert.equal(cmosRead(rtc, 0x0b), 0x82);
  cmosWrite(rtc, 0x09, 0x99);
  cmosWrite(rtc, 0x08, 0x12);
  cmosWrite(rtc, 0x07, 0x31);
  cmosWrite(rtc, 0x04, 0x23);
  cmosWrite(rtc, 0x02, 0x59);
  cmosWrite(rtc, 0x00, 0x58);
  cmosWrite(rtc, 0x32, 0x19);
  cmosWrite(rtc, 0x0b, 0x02);
  clock.ms += 1500;
  assert.deepEqual(readTime(rtc), [0x59, 0x59, 0x23, 6, 0x31, 0x12, 0x99, 0x19]);
  clock.ms += 1000; // into the new millennium
  assert.deepEqual(readTime(rtc), [0x00, 0x00, 0x00, 7, 0x01, 0x01, 0x00, 0x20]);
});

Deno.test("rtc writing one field of a running clock keeps the rest", () => {
  const { rtc } = setup(Date.UTC(2024, 1, 28, 12, 0, 0));
  cmosWrite(rtc, 0x07, 0x29); // Feb 29 exists in 2024
  assert.deepEqual(readTime(rtc), [0x00, 0x00, 0x12, 5, 0x29, 0x02, 0x24, 0x20]);
  cmosWrite(rtc, 0x09, 0x23); // no Feb 29 in 2023: rolls to Mar 1
  assert.deepEqual(readTime(rtc).slice(4, 7), [0x01, 0x03, 0x23]);
  cmosWrite(rtc, 0x08, 0x99); // garbage month is clamped, not a crash
  assert.equal(typeof cmosRead(rtc, 0), "number");
});

Deno.test("rtc index bit 7 masks NMIs and still selects the register", () => {
  const { rtc } = setup(T0);
  assert.equal(rtc.nmiDisabled, false);
  assert.equal(cmosRead(rtc, 0x8a), 0x26);
  assert.equal(rtc.nmiDisabled, true);
  cmosRead(rtc, 0x0a);
  assert.equal(rtc.nmiDisabled, false);
  rtc.read(0, b);
  assert.equal(b[0], 0xff, "the index port is write-only");
});

Deno.test("rtc register C reports update-ended, alarm and periodic flags", () => {
  const { rtc, clock } = setup(T0);
  assert.equal(cmosRead(rtc, 0x0c), 0x40, "periodic rate 1024 Hz has passed");
  assert.equal(cmosRead(rtc, 0x0c), 0x00);
  clock.ms += 1000;
  cmosWrite(rtc, 0x0b, 0x12); // UIE
  assert.equal(cmosRead(rtc, 0x0c), 0x80 | 0x10 | 0x40);
  cmosWrite(rtc, 0x01, 0xff);
  cmosWrite(rtc, 0x03, 0x45);
  cmosWrite(rtc, 0x05, 0xc0);
  cmosWrite(rtc, 0x0b, 0x22); // AIE
  assert.equal(cmosRead(rtc, 0x0c) & 0xa0, 0xa0);
  cmosWrite(rtc, 0x0c, 0xff);
  cmosWrite(rtc, 0x0d, 0x00);
  assert.equal(cmosRead(rtc, 0x0d), 0x80);
});

Deno.test("rtc CMOS memory holds the machine's sizes and keeps guest bytes", () => {
  const { rtc } = setup(T0, {
    memoryBelow4g: 3 * 1024 * 1024 * 1024,
    memoryAbove4g: 2 * 1024 * 1024 * 1024,
    cpus: 4,
  });
  assert.equal(cmosRead(rtc, 0x15) | (cmosRead(rtc, 0x16) << 8), 640);
  assert.equal(cmosRead(rtc, 0x17) | (cmosRead(rtc, 0x18) << 8), 0xffff);
  assert.equal(cmosRead(rtc, 0x30) | (cmosRead(rtc, 0x31) << 8), 0xffff);
  assert.equal(cmosRead(rtc, 0x34) | (cmosRead(rtc, 0x35) << 8), (3072 - 16) * 16);
  assert.equal(
    cmosRead(rtc, 0x5b) | (cmosRead(rtc, 0x5c) << 8) | (cmosRead(rtc, 0x5d) << 16),
    2048 * 16,
  );
  assert.equal(cmosRead(rtc, 0x5f), 3);
  cmosWrite(rtc, 0x0f, 0x0a); // smpboot's warm-reset shutdown code
  assert.equal(cmosRead(rtc, 0x0f), 0x0a);
  cmosWrite(rtc, 0x7f, 0x5a);
  assert.equal(cmosRead(rtc, 0xff), 0x5a);
  const small = setup(T0, { memoryBelow4g: 8 * 1024 * 1024 }).rtc;
  assert.equal(cmosRead(small, 0x17) | (cmosRead(small, 0x18) << 8), 7 * 1024);
  assert.equal(cmosRead(small, 0x34) | (cmosRead(small, 0x35) << 8), 0);
});

Deno.test("rtc calendar matches Date over four centuries of days", () => {
  const { rtc, clock } = setup(0);
  cmosWrite(rtc, 0x0b, 0x06);
  for (let day = -40000; day < 110000; day += 97) {
    clock.ms = day * 86400000 + 3723000;
    const d = new Date(clock.ms);
    const got = readTime(rtc);
    assert.deepEqual(got, [
      3,
      2,
      1,
      d.getUTCDay() + 1,
      d.getUTCDate(),
      d.getUTCMonth() + 1,
      d.getUTCFullYear() % 100,
      Math.floor(d.getUTCFullYear() / 100),
    ], d.toISOString());
  }
});
