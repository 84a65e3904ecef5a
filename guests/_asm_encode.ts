/**
 * The assembler's encoding helpers: prefixes, REX, ModRM/SIB, immediates.
 *
 * @module
 */
import { evalExpr, type Expr, type ExprScope, isRelocatable } from "./_expr.ts";
import type { Reg } from "./_registers.ts";
import type { Bits, Ctx, Imm, Insn, Mem, Operand, Size } from "./_asm_types.ts";

export interface Enc {
  legacy: number[];
  /** REX.WRXB bits (8/4/2/1). */
  rex: number;
  needRex: boolean;
  noRex: boolean;
  op: number[];
  tail: number[];
}

export function newEnc(prefixes: string[]): Enc {
  const legacy = prefixes.map((p) => (p === "lock" ? 0xf0 : 0xf3));
  return { legacy, rex: 0, needRex: false, noRex: false, op: [], tail: [] };
}

export function finish(e: Enc, bits: Bits): number[] {
  const rex = e.rex !== 0 || e.needRex;
  if (rex && bits !== 64) throw new SyntaxError("r8-r15, spl-dil and 64-bit operands need bits 64");
  if (rex && e.noRex) throw new SyntaxError("ah, ch, dh and bh cannot be used with a REX prefix");
  return [...e.legacy, ...(rex ? [0x40 | e.rex] : []), ...e.op, ...e.tail];
}

export function operandSize(e: Enc, size: Size, bits: Bits): void {
  if (size === 16 && bits !== 16) e.legacy.push(0x66);
  else if (size === 32 && bits === 16) e.legacy.push(0x66);
  else if (size === 64) {
    if (bits !== 64) throw new SyntaxError("64-bit operands need bits 64");
    e.rex |= 8;
  }
}

export function useReg(e: Enc, r: Reg): void {
  if (r.high8) e.noRex = true;
  if (r.needsRex) e.needRex = true;
}

export function fits(v: bigint, width: number, signedOnly = false): boolean {
  const half = 1n << BigInt(width - 1);
  return v >= -half && v < (signedOnly ? half : half * 2n);
}

/** Evaluates an expression that must fit `width` bits (signed or unsigned). */
export function value(ctx: Ctx, expr: Expr, width: number, signedOnly = false): bigint {
  const v = evalExpr(expr, ctx.scope);
  if (ctx.strict) {
    if (!v.known) throw new SyntaxError(`Undefined label '${unknownLabel(expr, ctx.scope)}'`);
    if (!fits(v.value, width, signedOnly)) {
      throw new RangeError(`Value 0x${v.value.toString(16)} does not fit in ${width} bits`);
    }
  }
  return v.value;
}

export function unknownLabel(e: Expr, scope: ExprScope): string {
  if (e.kind === "label") return scope.lookup(e.name) === undefined ? e.name : "";
  if (e.kind === "unary") return unknownLabel(e.arg, scope);
  if (e.kind === "binary") return unknownLabel(e.left, scope) || unknownLabel(e.right, scope);
  return "";
}

export function pushImm(out: number[], v: bigint, width: number): void {
  for (let i = 0; i < width / 8; i++) out.push(Number((v >> BigInt(8 * i)) & 0xffn));
}

/** A 64-bit value as the sign-extended imm32 that encodes it (or out of range). */
export function asImm32For64(v: bigint): bigint {
  return v >= 1n << 63n ? v - (1n << 64n) : v;
}

export const MEM16: Record<string, number> = {
  "bx+si": 0,
  "bx+di": 1,
  "bp+si": 2,
  "bp+di": 3,
  "si": 4,
  "di": 5,
  "bp": 6,
  "bx": 7,
};

/** Appends ModRM (+SIB +disp) for `reg` (a register number or /digit) and a reg/mem operand. */
export function modrm(e: Enc, reg: number, rm: Reg | Mem, ctx: Ctx): void {
  if (reg & 8) e.rex |= 4;
  if (rm.kind === "reg") {
    if (rm.cls !== "gpr") throw new SyntaxError(`'${rm.name}' is not a general register`);
    useReg(e, rm);
    if (rm.num & 8) e.rex |= 1;
    e.tail.push(0xc0 | ((reg & 7) << 3) | (rm.num & 7));
    return;
  }
  const { base, index } = rm;
  const bits = ctx.bits;
  const addrSize = base?.size ?? index?.size ?? (bits === 64 ? 64 : bits === 16 ? 16 : 32);
  if (base !== undefined && index !== undefined && base.size !== index.size) {
    throw new SyntaxError("Base and index registers differ in size");
  }
  const reloc = rm.disp !== undefined && isRelocatable(rm.disp);
  const dispRaw = rm.disp === undefined ? 0n : evalExpr(rm.disp, ctx.scope).value;
  const r3 = (reg & 7) << 3;
  if (addrSize === 16) {
    if (bits === 64) throw new SyntaxError("16-bit addressing is invalid in 64-bit mode");
    if (bits === 32) e.legacy.push(0x67);
    if (rm.scale !== 1) throw new SyntaxError("16-bit addressing has no scale");
    const regs = [base, index].filter((r) => r !== undefined).map((r) => r.name);
    const rank = (r: string) => (r === "bx" || r === "bp" ? 0 : 1);
    regs.sort((x, y) => rank(x) - rank(y));
    const key = regs.join("+");
    const disp = rm.disp === undefined ? 0n : value(ctx, rm.disp, 16);
    if (key === "") {
      e.tail.push(r3 | 6); // mod 0 rm 6: [disp16]
      pushImm(e.tail, disp, 16);
      return;
    }
    const rmv = MEM16[key];
    if (rmv === undefined) throw new SyntaxError(`Invalid 16-bit address [${key}]`);
    if (disp === 0n && !reloc && rmv !== 6) e.tail.push(r3 | rmv);
    else if (!reloc && fits(disp, 8, true)) e.tail.push(0x40 | r3 | rmv, Number(disp & 0xffn));
    else {
      e.tail.push(0x80 | r3 | rmv);
      pushImm(e.tail, disp, 16);
    }
    return;
  }
  if (addrSize === 64 && bits !== 64) throw new SyntaxError("64-bit addressing needs bits 64");
  if (addrSize === 32 && bits !== 32) e.legacy.push(0x67);
  // A 64-bit address's disp32 is sign-extended; a 32-bit one wraps at 4 GiB.
  const signedOnly = addrSize === 64;
  if (index !== undefined && index.num === 4) throw new SyntaxError("esp/rsp cannot be an index");
  const ss = [1, 2, 4, 8].indexOf(rm.scale);
  if (index !== undefined && index.num & 8) e.rex |= 2;
  if (base !== undefined && base.num & 8) e.rex |= 1;
  const dispOf = () => (rm.disp === undefined ? 0n : value(ctx, rm.disp, 32, signedOnly));
  if (base === undefined) {
    if (index !== undefined) {
      e.tail.push(r3 | 4, (ss << 6) | ((index.num & 7) << 3) | 5); // SIB base 5, mod 0: disp32
    } else if (bits === 64) {
      e.tail.push(r3 | 4, (4 << 3) | 5); // SIB no index, no base: absolute disp32
    } else {
      e.tail.push(r3 | 5); // mod 0 rm 5: disp32
    }
    pushImm(e.tail, dispOf(), 32);
    return;
  }
  const needsSib = index !== undefined || (base.num & 7) === 4;
  let mod = 2;
  if (rm.disp === undefined || (dispRaw === 0n && !reloc)) mod = (base.num & 7) === 5 ? 1 : 0;
  else if (!reloc && fits(dispRaw, 8, true)) mod = 1;
  e.tail.push((mod << 6) | r3 | (needsSib ? 4 : base.num & 7));
  if (needsSib) {
    const idx = index === undefined ? 4 : index.num & 7;
    e.tail.push((ss << 6) | (idx << 3) | (base.num & 7));
  }
  if (mod === 1) e.tail.push(Number(dispOf() & 0xffn));
  else if (mod === 2) pushImm(e.tail, dispOf(), 32);
}

export function isGpr(o: Operand | undefined): o is Reg {
  return o?.kind === "reg" && o.cls === "gpr";
}

export function isRm(o: Operand | undefined): o is Reg | Mem {
  return isGpr(o) || o?.kind === "mem";
}

/** Operand size of an instruction from its register operands and size keywords. */
export function sizeOf(ops: Operand[]): Size {
  let size: Size | undefined;
  for (const o of ops) {
    const s = o.kind === "reg" ? (o.cls === "gpr" ? o.size : undefined) : o.size;
    if (s === undefined || o.kind === "imm") continue;
    if (size !== undefined && s !== size) throw new SyntaxError("Operand sizes do not match");
    size = s;
  }
  if (size === undefined) {
    throw new SyntaxError("Operand size is ambiguous; add byte, word, dword or qword");
  }
  return size;
}

/** Immediate of an ALU-style instruction: imm8/16/32, and a sign-extended imm32 for 64-bit. */
export function pushOpImm(e: Enc, ctx: Ctx, imm: Imm, size: Size): void {
  if (size === 64) {
    const v = asImm32For64(evalExpr(imm.expr, ctx.scope).value);
    if (ctx.strict && !fits(v, 32, true)) {
      throw new RangeError("64-bit immediate must be a sign-extended 32-bit value");
    }
    value(ctx, imm.expr, 64);
    pushImm(e.tail, v, 32);
  } else pushImm(e.tail, value(ctx, imm.expr, size), size);
}

export function shortImm(ctx: Ctx, imm: Imm): boolean {
  if (isRelocatable(imm.expr)) return false;
  return fits(asImm32For64(evalExpr(imm.expr, ctx.scope).value), 8, true);
}

export function expectOps(st: Insn, n: number): void {
  if (st.ops.length !== n) {
    throw new SyntaxError(`${st.mnemonic} takes ${n} operand${n === 1 ? "" : "s"}`);
  }
}

export function unsupported(st: Insn): never {
  const forms = st.ops.map((o) => (o.kind === "reg" ? o.cls : o.kind)).join(", ");
  throw new SyntaxError(`Unsupported operand form for ${st.mnemonic}: (${forms})`);
}
