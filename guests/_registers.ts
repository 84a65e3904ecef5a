/**
 * x86 register names and their encodings.
 *
 * @module
 */

/** Register classes the assembler knows. */
export type RegClass = "gpr" | "seg" | "cr";

/** A register operand: `num` is the 4-bit encoding (bit 3 goes into a REX bit). */
export interface Reg {
  kind: "reg";
  name: string;
  cls: RegClass;
  size: 8 | 16 | 32 | 64;
  num: number;
  /** ah/ch/dh/bh: not encodable when a REX prefix is present. */
  high8: boolean;
  /** spl/bpl/sil/dil and r8b..r15b: need a REX prefix. */
  needsRex: boolean;
}

const REGS = new Map<string, Reg>();

function add(
  name: string,
  cls: RegClass,
  size: Reg["size"],
  num: number,
  extra: Partial<Reg> = {},
) {
  REGS.set(name, { kind: "reg", name, cls, size, num, high8: false, needsRex: false, ...extra });
}

const LOW = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
LOW.forEach((r, i) => {
  add(r, "gpr", 16, i);
  add(`e${r}`, "gpr", 32, i);
  add(`r${r}`, "gpr", 64, i);
});
["al", "cl", "dl", "bl"].forEach((r, i) => add(r, "gpr", 8, i));
["ah", "ch", "dh", "bh"].forEach((r, i) => add(r, "gpr", 8, i + 4, { high8: true }));
["spl", "bpl", "sil", "dil"].forEach((r, i) => add(r, "gpr", 8, i + 4, { needsRex: true }));
for (let i = 8; i < 16; i++) {
  add(`r${i}`, "gpr", 64, i);
  add(`r${i}d`, "gpr", 32, i);
  add(`r${i}w`, "gpr", 16, i);
  add(`r${i}b`, "gpr", 8, i, { needsRex: true });
}
["es", "cs", "ss", "ds", "fs", "gs"].forEach((r, i) => add(r, "seg", 16, i));
[0, 2, 3, 4, 8].forEach((n) => add(`cr${n}`, "cr", 64, n));

/** Looks up a register by its lowercase name. */
export function register(name: string): Reg | undefined {
  return REGS.get(name.toLowerCase());
}

const KEYWORDS = new Set(["byte", "word", "dword", "qword", "ptr", "rip"]);

/** True for names that cannot be labels: registers and size keywords. */
export function isReserved(name: string): boolean {
  return REGS.has(name) || KEYWORDS.has(name);
}
