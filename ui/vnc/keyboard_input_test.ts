import assert from "node:assert/strict";
import { keysymToSet1 } from "./keymap.ts";
import { Ps2KeyboardInput } from "./keyboard_input.ts";
import { MainLoop } from "../../mainloop/main_loop.ts";

Deno.test("keysyms map to US set-1 keys; shifted symbols share their key; unknown keysyms are null", () => {
  const make = (k: number) => [...keysymToSet1(k, true)!];
  assert.deepEqual(make(0x61), [0x1e]); // a
  assert.deepEqual(make(0x41), [0x1e]); // A
  assert.deepEqual(make(0x31), [0x02]); // 1
  assert.deepEqual(make(0x21), [0x02]); // !
  assert.deepEqual(make(0x7c), [0x2b]); // |
  assert.deepEqual(make(0x2f), [0x35]); // /
  assert.deepEqual(make(0x20), [0x39]); // space
  assert.deepEqual(make(0xff0d), [0x1c]); // Return
  assert.deepEqual(make(0xffe1), [0x2a]); // Shift_L
  assert.deepEqual(make(0xffc9), [0x58]); // F12
  assert.deepEqual([...keysymToSet1(0xff52, false)!], [0xe0, 0xc8]); // Up released
  assert.deepEqual([...keysymToSet1(0x6d, false)!], [0xb2]); // m released
  assert.equal(keysymToSet1(0x20ac, true), null); // EuroSign
});

Deno.test("a typed line waits on the host until the controller drains", async () => {
  const loop = new MainLoop();
  const running = loop.run();
  const fifo: number[] = [];
  const kbd = new Ps2KeyboardInput(loop, {
    push(bytes) {
      const n = Math.min(bytes.length, 4 - fifo.length);
      fifo.push(...bytes.subarray(0, n));
      return n;
    },
    translating: () => true,
  });
  try {
    for (const ch of "ls -l") {
      kbd.key(true, ch.charCodeAt(0));
      kbd.key(false, ch.charCodeAt(0));
    }
    assert.equal(fifo.length, 4);
    assert.equal(kbd.pending, 6);
    const seen: number[] = [];
    const deadline = Date.now() + 2000;
    while (seen.length < 10 && Date.now() < deadline) {
      seen.push(...fifo.splice(0)); // the guest reads port 0x60
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.deepEqual(seen, [0x26, 0xa6, 0x1f, 0x9f, 0x39, 0xb9, 0x0c, 0x8c, 0x26, 0xa6]);
  } finally {
    kbd.close();
    loop.stop();
    await running;
    loop.close();
  }
});
