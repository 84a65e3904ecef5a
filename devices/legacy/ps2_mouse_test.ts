import assert from "node:assert/strict";
import { PS2_MOUSE_QUEUE_BYTES, PS2_MOUSE_STATE_BYTES, Ps2Mouse } from "./ps2_mouse.ts";

function setup(): Ps2Mouse {
  const region = {
    sab: new SharedArrayBuffer(PS2_MOUSE_STATE_BYTES),
    offset: 0,
    length: PS2_MOUSE_STATE_BYTES,
  };
  Ps2Mouse.initState(region);
  return new Ps2Mouse(region);
}

/** Sends bytes as the guest's 0xd4 writes do, then takes everything queued. */
function send(m: Ps2Mouse, ...bytes: number[]): number[] {
  for (const b of bytes) m.write(b);
  return drain(m);
}

/** n ACK bytes, one per command or argument byte. */
function acks(n: number): number[] {
  return new Array(n).fill(0xfa);
}

function drain(m: Ps2Mouse): number[] {
  const out: number[] = [];
  while (m.pending > 0) out.push(m.shift());
  return out;
}

Deno.test("reset, ID and defaults answer byte for byte", () => {
  const m = setup();
  assert.equal(m.shift(), -1, "nothing before the guest asks");
  assert.deepEqual(send(m, 0xff), [0xfa, 0xaa, 0x00]);
  assert.deepEqual(send(m, 0xf2), [0xfa, 0x00]);
  assert.deepEqual(send(m, 0xe9), [0xfa, 0x00, 2, 100], "stream, disabled, 1:1, 4 c/mm, 100/s");
  assert.deepEqual(send(m, 0xf0, 0xe7, 0xe8, 0x03, 0xf3, 40, 0xf4), [...acks(7)]);
  assert.deepEqual(send(m, 0xe9), [0xfa, 0x40 | 0x20 | 0x10, 3, 40]);
  assert.deepEqual(send(m, 0xf6), [0xfa]);
  assert.deepEqual(send(m, 0xe9), [0xfa, 0x00, 2, 100], "0xf6 restores the defaults");
  assert.deepEqual(send(m, 0xf4, 0xe6, 0xea, 0xf5), [0xfa, 0xfa, 0xfa, 0xfa]);
  assert.equal(m.enabled, false);
});

Deno.test("the IntelliMouse knock (rates 200, 100, 80) makes ID 3; other sequences do not", () => {
  const m = setup();
  assert.deepEqual(send(m, 0xf3, 200, 0xf3, 100, 0xf3, 60, 0xf2), [...acks(7), 0]);
  assert.deepEqual(
    send(m, 0xf3, 200, 0xf3, 200, 0xf3, 80, 0xf2),
    [...acks(7), 0],
    "Explorer knock: not an Explorer",
  );
  // psmouse's intellimouse_detect, with an interrupted attempt first.
  send(m, 0xf3, 200, 0xf3, 200);
  assert.deepEqual(send(m, 0xf3, 100, 0xf3, 80, 0xf2), [0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0x03]);
  assert.equal(m.id, 3);
  assert.deepEqual(send(m, 0xf3, 200, 0xf3, 200, 0xf3, 80, 0xf2), [...acks(7), 0x03]);
  assert.deepEqual(send(m, 0xff), [0xfa, 0xaa, 0x00], "reset forgets the wheel");
  assert.deepEqual(send(m, 0xf2), [0xfa, 0x00]);
});

Deno.test("unknown bytes get RESEND, a second one ERROR; resend repeats the last byte", () => {
  const m = setup();
  assert.deepEqual(send(m, 0x00), [0xfe]);
  assert.deepEqual(send(m, 0xe1), [0xfc], "trackpoint's read-ID: still unknown");
  assert.deepEqual(send(m, 0xf2), [0xfa, 0x00], "a good command clears the error");
  assert.deepEqual(send(m, 0xfe), [0x00], "0xfe: the last byte again");
  assert.deepEqual(send(m, 0xe8, 4), [0xfa, 0xfe], "resolution 4 does not exist");
  assert.deepEqual(send(m, 0xe9), [0xfa, 0x00, 2, 100], "and was not taken");
  // Wrap mode echoes all but 0xec and 0xff.
  assert.deepEqual(send(m, 0xee, 0x12, 0xf2, 0xec, 0xf2), [0xfa, 0x12, 0xf2, 0xfa, 0xfa, 0x00]);
});

Deno.test("stream packets: buttons, signs, up is positive, big moves split", () => {
  const m = setup();
  m.input(5, -3, 0, 1);
  assert.equal(m.pending, 0, "nothing while reporting is disabled");
  assert.equal(m.stats().dropped, 1);
  send(m, 0xf4);
  m.input(5, -3, 0, 0b001);
  assert.deepEqual(drain(m), [0x09, 5, 3]);
  m.input(-2, 4, 0, 0b110); // right + middle
  assert.deepEqual(drain(m), [0x08 | 0x10 | 0x20 | 0x06, 0xfe, 0xfc]);
  m.input(0, 0, 0, 0);
  assert.deepEqual(drain(m), [0x08, 0, 0], "a release with no motion is a packet");
  m.input(0, 0, 0, 0);
  assert.deepEqual(drain(m), [], "no news, no packet");
  m.input(600, -300, 0, 0);
  assert.deepEqual(drain(m), [0x08, 255, 255, 0x08, 255, 45, 0x08, 90, 0]);
  // 2:1 scaling (stream only): 4 counts read as 6.
  send(m, 0xe7);
  m.input(4, 0, 0, 0);
  assert.deepEqual(drain(m), [0x08, 6, 0]);
  assert.equal(m.stats().packets, 7);
});

Deno.test("an IntelliMouse sends a fourth byte with the wheel", () => {
  const m = setup();
  send(m, 0xf3, 200, 0xf3, 100, 0xf3, 80, 0xf4);
  m.input(1, 1, -1, 0);
  assert.deepEqual(drain(m), [0x28, 1, 0xff, 0xff], "wheel up is -1");
  m.input(0, 0, 2, 0);
  assert.deepEqual(drain(m), [0x08, 0, 0, 2]);
});

Deno.test("remote mode: motion waits for 0xeb", () => {
  const m = setup();
  send(m, 0xf4, 0xf0);
  m.input(3, 0, 0, 1);
  assert.deepEqual(drain(m), []);
  assert.deepEqual(send(m, 0xeb), [0xfa, 0x09, 3, 0]);
  assert.deepEqual(send(m, 0xeb), [0xfa, 0x09, 0, 0], "counters cleared by the read");
  assert.deepEqual(send(m, 0xe9), [0xfa, 0x60 | 0x04, 2, 100], "left held shows as bit 2");
});

Deno.test("a flood is bounded: the queue never exceeds 256 bytes, motion waits in the counters", () => {
  const m = setup();
  send(m, 0xf4);
  for (let i = 0; i < 5000; i++) m.input(1, 0, 0, 0);
  assert.ok(m.pending <= PS2_MOUSE_QUEUE_BYTES - 8, `${m.pending} bytes queued`);
  assert.ok(m.stats().coalesced > 4000);
  // A command's reply still fits behind the packets; motion that waited
  // follows as the guest drains the queue.
  m.write(0xe9); // status: leaves the counters alone (0xf2 would clear them)
  const out = drain(m);
  let dx = 0, replyAt = -1;
  for (let i = 0; i < out.length;) {
    if (out[i] === 0xfa) {
      assert.deepEqual(out.slice(i + 1, i + 4), [0x20, 2, 100]);
      replyAt = i;
      i += 4;
      continue;
    }
    assert.equal(out[i], 0x08, `byte ${i} starts a packet`);
    dx += out[i + 1];
    i += 3;
  }
  assert.ok(replyAt > 0 && replyAt < out.length - 4, "reply between packets");
  assert.equal(dx, 5000, "every count arrives, none twice");
  // The shared state never grows: flooding a saturated mouse keeps it bounded.
  for (let i = 0; i < 100_000; i++) m.input(1000, 1000, 0, i & 1);
  assert.ok(m.pending <= PS2_MOUSE_QUEUE_BYTES);
});
