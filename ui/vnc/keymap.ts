/**
 * X keysyms (what RFB KeyEvents carry) to PC/AT scancode set 1, for a US
 * layout: the physical key a keysym sits on. Shift is the client's own
 * key event, so 'A' and 'a' (or '!' and '1') map to the same key.
 *
 * @module
 */

const KEYS_UNSHIFTED = "1234567890-=";
const KEYS_SHIFTED = "!@#$%^&*()_+";
const ROWS: [string, string, number][] = [
  ["qwertyuiop[]", "QWERTYUIOP{}", 0x10],
  ["asdfghjkl;'`", 'ASDFGHJKL:"~', 0x1e],
  ["\\zxcvbnm,./", "|ZXCVBNM<>?", 0x2b],
];

const table = new Map<number, number>();
for (let i = 0; i < KEYS_UNSHIFTED.length; i++) {
  table.set(KEYS_UNSHIFTED.charCodeAt(i), 0x02 + i);
  table.set(KEYS_SHIFTED.charCodeAt(i), 0x02 + i);
}
for (const [plain, shifted, base] of ROWS) {
  for (let i = 0; i < plain.length; i++) {
    table.set(plain.charCodeAt(i), base + i);
    table.set(shifted.charCodeAt(i), base + i);
  }
}
const E0 = 0x100;
const SPECIAL: [number, number][] = [
  [0x20, 0x39], // space
  [0xff08, 0x0e], // BackSpace
  [0xff09, 0x0f], // Tab
  [0xff0d, 0x1c], // Return
  [0xff1b, 0x01], // Escape
  [0xffe1, 0x2a], // Shift_L
  [0xffe2, 0x36], // Shift_R
  [0xffe3, 0x1d], // Control_L
  [0xffe4, E0 | 0x1d], // Control_R
  [0xffe5, 0x3a], // Caps_Lock
  [0xffe9, 0x38], // Alt_L
  [0xffea, E0 | 0x38], // Alt_R
  [0xffe7, 0x38], // Meta_L
  [0xffeb, E0 | 0x5b], // Super_L
  [0xffec, E0 | 0x5c], // Super_R
  [0xff67, E0 | 0x5d], // Menu
  [0xff50, E0 | 0x47], // Home
  [0xff51, E0 | 0x4b], // Left
  [0xff52, E0 | 0x48], // Up
  [0xff53, E0 | 0x4d], // Right
  [0xff54, E0 | 0x50], // Down
  [0xff55, E0 | 0x49], // Page_Up
  [0xff56, E0 | 0x51], // Page_Down
  [0xff57, E0 | 0x4f], // End
  [0xff63, E0 | 0x52], // Insert
  [0xffff, E0 | 0x53], // Delete
  [0xff8d, E0 | 0x1c], // KP_Enter
  [0xff7f, 0x45], // Num_Lock
  [0xff14, 0x46], // Scroll_Lock
];
for (const [k, v] of SPECIAL) table.set(k, v);
for (let i = 0; i < 10; i++) table.set(0xffbe + i, 0x3b + i); // F1-F10
table.set(0xffc8, 0x57); // F11
table.set(0xffc9, 0x58); // F12

/** Flag of a key code whose scancodes are prefixed with 0xE0 (an extended key). */
export const EXTENDED_KEY = E0;

/**
 * The key a keysym sits on, as a key code: the set-1 make code, with
 * {@link EXTENDED_KEY} for an extended key.
 *
 * @param keysym X keysym
 * @returns the key code, or undefined for a keysym with no key on a US PC keyboard
 */
export function keysymToKeyCode(keysym: number): number | undefined {
  return table.get(keysym);
}

/**
 * The set-1 bytes of a key code's press or release.
 *
 * @param code a key code ({@link keysymToKeyCode})
 * @param down pressed (make code) or released (break code)
 * @returns one byte, or 0xE0 and one for an extended key
 * @example
 * ```ts
 * import { EXTENDED_KEY, set1Bytes } from "./keymap.ts";
 * console.log(set1Bytes(EXTENDED_KEY | 0x48, false)); // Uint8Array [0xe0, 0xc8] (Up released)
 * ```
 */
export function set1Bytes(code: number, down: boolean): Uint8Array {
  const make = code & 0x7f;
  const b = down ? make : make | 0x80;
  return code & E0 ? new Uint8Array([0xe0, b]) : new Uint8Array([b]);
}

/**
 * The set-1 bytes for a key press or release.
 *
 * @param keysym X keysym from a KeyEvent
 * @param down pressed (make code) or released (break code)
 * @returns the bytes, or null for a keysym with no key on a US PC keyboard
 * @example
 * ```ts
 * import { keysymToSet1 } from "./keymap.ts";
 * console.log(keysymToSet1(0x61, true)); // Uint8Array [0x1e] ('a')
 * console.log(keysymToSet1(0xff52, false)); // Uint8Array [0xe0, 0xc8] (Up released)
 * ```
 */
export function keysymToSet1(keysym: number, down: boolean): Uint8Array | null {
  const code = table.get(keysym);
  return code === undefined ? null : set1Bytes(code, down);
}
