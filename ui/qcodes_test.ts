import assert from "node:assert/strict";
import { qcodeToKeyCode, qnumToKeyCode } from "./qcodes.ts";
import { EXTENDED_KEY as E, keysymToKeyCode } from "./vnc/keymap.ts";

Deno.test("QEMU key names land on the same keys as the keysyms a VNC client sends", () => {
  for (const c of "abcdefghijklmnopqrstuvwxyz0123456789") {
    assert.equal(qcodeToKeyCode(c), keysymToKeyCode(c.charCodeAt(0)), c);
  }
  const byKeysym: [string, number][] = [
    ["minus", 0x2d],
    ["equal", 0x3d],
    ["bracket_left", 0x5b],
    ["bracket_right", 0x5d],
    ["semicolon", 0x3b],
    ["apostrophe", 0x27],
    ["grave_accent", 0x60],
    ["backslash", 0x5c],
    ["comma", 0x2c],
    ["dot", 0x2e],
    ["slash", 0x2f],
    ["spc", 0x20],
    ["ret", 0xff0d],
    ["esc", 0xff1b],
    ["tab", 0xff09],
    ["backspace", 0xff08],
    ["shift", 0xffe1],
    ["shift_r", 0xffe2],
    ["ctrl", 0xffe3],
    ["ctrl_r", 0xffe4],
    ["alt", 0xffe9],
    ["alt_r", 0xffea],
    ["caps_lock", 0xffe5],
    ["meta_l", 0xffeb],
    ["menu", 0xff67],
    ["home", 0xff50],
    ["left", 0xff51],
    ["up", 0xff52],
    ["right", 0xff53],
    ["down", 0xff54],
    ["pgup", 0xff55],
    ["pgdn", 0xff56],
    ["end", 0xff57],
    ["insert", 0xff63],
    ["delete", 0xffff],
    ["kp_enter", 0xff8d],
    ["num_lock", 0xff7f],
    ["f1", 0xffbe],
    ["f10", 0xffc7],
    ["f11", 0xffc8],
    ["f12", 0xffc9],
  ];
  for (const [qcode, keysym] of byKeysym) {
    const want = keysymToKeyCode(keysym);
    assert.notEqual(want, undefined, qcode);
    assert.equal(qcodeToKeyCode(qcode), want, qcode);
  }
  // Keypad keys have no keysym in the VNC table: their set-1 codes.
  assert.equal(qcodeToKeyCode("kp_7"), 0x47);
  assert.equal(qcodeToKeyCode("kp_0"), 0x52);
  assert.equal(qcodeToKeyCode("kp_divide"), E | 0x35);
  for (const bad of ["A", "foo", "", "f13", "toString", "__proto__"]) {
    assert.equal(qcodeToKeyCode(bad), undefined, bad);
  }
});

Deno.test("QEMU key numbers: set-1 make codes, 0x80 for an extended key", () => {
  assert.equal(qnumToKeyCode(0x1c), qcodeToKeyCode("ret"));
  assert.equal(qnumToKeyCode(0x9c), qcodeToKeyCode("kp_enter"));
  assert.equal(qnumToKeyCode(0xc8), qcodeToKeyCode("up"));
  assert.equal(qnumToKeyCode(0x1d), qcodeToKeyCode("ctrl"));
  for (const bad of [0, 0x80, 0x100, -1, 1.5, NaN]) assert.equal(qnumToKeyCode(bad), undefined);
});
