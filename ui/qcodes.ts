/**
 * QEMU's names of keys (`QKeyCode` in qapi/ui.json: what QMP `send-key`
 * and HMP `sendkey` take, `ctrl`, `alt`, `delete`, `f1`, `kp_enter`, ...)
 * and its key numbers (`qnum`: the set-1 make code, 0x80 added for an
 * extended key), as the key codes of ui/vnc/keymap.ts: the keys of a US PC
 * keyboard.
 *
 * @module
 */
import { EXTENDED_KEY, keysymToKeyCode } from "./vnc/keymap.ts";

const E = EXTENDED_KEY;

/** QKeyCodes that are not one printable character. */
const NAMED: Record<string, number> = {
  shift: 0x2a,
  shift_r: 0x36,
  alt: 0x38,
  alt_r: E | 0x38,
  ctrl: 0x1d,
  ctrl_r: E | 0x1d,
  menu: E | 0x5d,
  esc: 0x01,
  minus: 0x0c,
  equal: 0x0d,
  backspace: 0x0e,
  tab: 0x0f,
  bracket_left: 0x1a,
  bracket_right: 0x1b,
  ret: 0x1c,
  semicolon: 0x27,
  apostrophe: 0x28,
  grave_accent: 0x29,
  backslash: 0x2b,
  comma: 0x33,
  dot: 0x34,
  slash: 0x35,
  asterisk: 0x37,
  spc: 0x39,
  caps_lock: 0x3a,
  num_lock: 0x45,
  scroll_lock: 0x46,
  kp_divide: E | 0x35,
  kp_multiply: 0x37,
  kp_subtract: 0x4a,
  kp_add: 0x4e,
  kp_enter: E | 0x1c,
  kp_decimal: 0x53,
  sysrq: 0x54,
  less: 0x56,
  print: E | 0x37,
  home: E | 0x47,
  pgup: E | 0x49,
  pgdn: E | 0x51,
  end: E | 0x4f,
  left: E | 0x4b,
  up: E | 0x48,
  down: E | 0x50,
  right: E | 0x4d,
  insert: E | 0x52,
  delete: E | 0x53,
  meta_l: E | 0x5b,
  meta_r: E | 0x5c,
  f11: 0x57,
  f12: 0x58,
};
for (let i = 1; i <= 10; i++) NAMED[`f${i}`] = 0x3a + i;
["kp_0", "kp_1", "kp_2", "kp_3", "kp_4", "kp_5", "kp_6", "kp_7", "kp_8", "kp_9"].forEach(
  (k, i) => NAMED[k] = [0x52, 0x4f, 0x50, 0x51, 0x4b, 0x4c, 0x4d, 0x47, 0x48, 0x49][i],
);

/**
 * The key code of a QEMU key name.
 *
 * @param qcode `a`..`z`, `0`..`9`, or a name such as `ctrl`, `ret`, `f5`, `kp_enter`
 * @returns the key code, or undefined for a name this keyboard has no key for
 * @example
 * ```ts
 * import { qcodeToKeyCode } from "./qcodes.ts";
 * console.log(qcodeToKeyCode("ret"), qcodeToKeyCode("a")); // 28 30
 * ```
 */
export function qcodeToKeyCode(qcode: string): number | undefined {
  if (Object.hasOwn(NAMED, qcode)) return NAMED[qcode];
  return /^[a-z0-9]$/.test(qcode) ? keysymToKeyCode(qcode.charCodeAt(0)) : undefined;
}

/**
 * The key code of a QEMU key number (`qnum`).
 *
 * @param qnum 1..0xff: a set-1 make code, 0x80 added for an extended key
 * @returns the key code, or undefined out of range
 * @example
 * ```ts
 * import { qnumToKeyCode } from "./qcodes.ts";
 * console.log(qnumToKeyCode(0x9c) === qnumToKeyCode(0x1c)); // false: kp_enter and ret
 * ```
 */
export function qnumToKeyCode(qnum: number): number | undefined {
  if (!Number.isInteger(qnum) || qnum < 1 || qnum > 0xff || qnum === 0x80) return undefined;
  return qnum & 0x80 ? E | (qnum & 0x7f) : qnum;
}
