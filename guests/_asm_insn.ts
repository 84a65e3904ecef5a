/**
 * The assembler's instruction encoders, by instruction group.
 *
 * @module
 */
import { evalExpr, isRelocatable } from "./_expr.ts";
import type { Reg } from "./_registers.ts";
import type { Ctx, Insn, Size } from "./_asm_types.ts";
import {
  asImm32For64,
  type Enc,
  expectOps,
  finish,
  fits,
  isGpr,
  isRm,
  modrm,
  newEnc,
  operandSize,
  pushImm,
  pushOpImm,
  shortImm,
  sizeOf,
  unsupported,
  useReg,
  value,
} from "./_asm_encode.ts";

export const SIMPLE: Record<string, number[]> = {
  nop: [0x90],
  hlt: [0xf4],
  cli: [0xfa],
  sti: [0xfb],
  cld: [0xfc],
  std: [0xfd],
  ret: [0xc3],
  iret: [0xcf],
  pause: [0xf3, 0x90],
  wrmsr: [0x0f, 0x30],
  rdtsc: [0x0f, 0x31],
  rdmsr: [0x0f, 0x32],
  cpuid: [0x0f, 0xa2],
};

export const ALU: Record<string, number> = {
  add: 0,
  or: 1,
  adc: 2,
  sbb: 3,
  and: 4,
  sub: 5,
  xor: 6,
  cmp: 7,
};
export const SHIFT: Record<string, number> = { rol: 0, ror: 1, shl: 4, sal: 4, shr: 5, sar: 7 };
export const UNARY: Record<string, [number, number]> = {
  inc: [0xfe, 0],
  dec: [0xfe, 1],
  not: [0xf6, 2],
  neg: [0xf6, 3],
};
export const CC: Record<string, number> = {
  o: 0,
  no: 1,
  b: 2,
  c: 2,
  nae: 2,
  ae: 3,
  nb: 3,
  nc: 3,
  e: 4,
  z: 4,
  ne: 5,
  nz: 5,
  be: 6,
  na: 6,
  a: 7,
  nbe: 7,
  s: 8,
  ns: 9,
  p: 10,
  pe: 10,
  np: 11,
  po: 11,
  l: 12,
  nge: 12,
  ge: 13,
  nl: 13,
  le: 14,
  ng: 14,
  g: 15,
  nle: 15,
};
export const STOS: Record<string, Size> = { stosb: 8, stosw: 16, stosd: 32, stosq: 64 };
export const MOVS: Record<string, Size> = { movsb: 8, movsw: 16, movsd: 32, movsq: 64 };
export const LOCKABLE = new Set([
  ...Object.keys(ALU),
  ...Object.keys(UNARY),
  "xadd",
  "xchg",
  "cmpxchg",
]);

export function encode(st: Insn, ctx: Ctx): number[] {
  const m = st.mnemonic;
  for (const p of st.prefixes) {
    if (p === "lock" && !(LOCKABLE.has(m) && m !== "cmp" && st.ops[0]?.kind === "mem")) {
      throw new SyntaxError(`lock needs a read-modify-write instruction with a memory destination`);
    }
    if (p === "rep" && !(m in STOS) && !(m in MOVS)) {
      throw new SyntaxError("rep is only supported with stos and movs");
    }
  }
  const e = newEnc(st.prefixes);
  const [a, b] = st.ops;
  if (m in SIMPLE) {
    expectOps(st, 0);
    e.op.push(...SIMPLE[m]);
  } else if (m in STOS) {
    expectOps(st, 0);
    operandSize(e, STOS[m], ctx.bits);
    e.op.push(STOS[m] === 8 ? 0xaa : 0xab); // AA/AB: store al/ax/eax/rax at es:[di]
  } else if (m in MOVS) {
    expectOps(st, 0);
    operandSize(e, MOVS[m], ctx.bits);
    e.op.push(MOVS[m] === 8 ? 0xa4 : 0xa5); // A4/A5: copy ds:[si] to es:[di]
  } else if (m in ALU) {
    expectOps(st, 2);
    alu(e, st, ALU[m], ctx);
  } else if (m in UNARY) {
    expectOps(st, 1);
    if (!isRm(a)) unsupported(st);
    const size = sizeOf([a]);
    operandSize(e, size, ctx.bits);
    e.op.push(UNARY[m][0] | (size === 8 ? 0 : 1));
    modrm(e, UNARY[m][1], a, ctx);
  } else if (m in SHIFT) {
    expectOps(st, 2);
    if (!isRm(a)) unsupported(st);
    const size = sizeOf([a]);
    operandSize(e, size, ctx.bits);
    const w = size === 8 ? 0 : 1;
    if (b.kind === "imm") {
      e.op.push(0xc0 | w); // C0/C1 /n ib
      modrm(e, SHIFT[m], a, ctx);
      e.tail.push(Number(value(ctx, b.expr, 8) & 0xffn));
    } else if (b.kind === "reg" && b.name === "cl") {
      e.op.push(0xd2 | w); // D2/D3 /n: count in cl
      modrm(e, SHIFT[m], a, ctx);
    } else unsupported(st);
  } else if (m === "mov") {
    expectOps(st, 2);
    mov(e, st, ctx);
  } else if (m === "test" || m === "xchg" || m === "xadd" || m === "cmpxchg") {
    expectOps(st, 2);
    exchangeLike(e, st, ctx);
  } else if (m === "lea") {
    expectOps(st, 2);
    if (!isGpr(a) || a.size === 8 || b.kind !== "mem") unsupported(st);
    operandSize(e, a.size, ctx.bits);
    e.op.push(0x8d);
    modrm(e, a.num, { ...b, size: undefined }, ctx);
  } else if (m === "push" || m === "pop") {
    expectOps(st, 1);
    pushPop(e, st, ctx);
  } else if (m === "in" || m === "out") {
    expectOps(st, 2);
    const [acc, port] = m === "in" ? [a, b] : [b, a];
    if (!isGpr(acc) || acc.num !== 0 || acc.size === 64 || acc.high8) unsupported(st);
    operandSize(e, acc.size, ctx.bits);
    const w = acc.size === 8 ? 0 : 1;
    const out = m === "out" ? 2 : 0;
    if (port.kind === "reg" && port.name === "dx") e.op.push(0xec | out | w);
    else if (port.kind === "imm") {
      e.op.push(0xe4 | out | w);
      e.tail.push(Number(value(ctx, port.expr, 8, false) & 0xffn));
      if (ctx.strict && value(ctx, port.expr, 9) < 0n) throw new RangeError("Port must be 0-255");
    } else unsupported(st);
  } else if (m === "lgdt" || m === "lidt") {
    expectOps(st, 1);
    if (a.kind !== "mem") unsupported(st);
    e.op.push(0x0f, 0x01);
    modrm(e, m === "lgdt" ? 2 : 3, a, ctx);
  } else if (m === "int") {
    expectOps(st, 1);
    if (a.kind !== "imm") unsupported(st);
    e.op.push(0xcd);
    e.tail.push(Number(value(ctx, a.expr, 8) & 0xffn));
  } else if (m === "jmp" || m === "call" || m === "loop" || (m[0] === "j" && m.slice(1) in CC)) {
    expectOps(st, 1);
    return branch(e, st, ctx);
  } else {
    throw new SyntaxError(`Unsupported instruction '${m}'`);
  }
  return finish(e, ctx.bits);
}

export function alu(e: Enc, st: Insn, n: number, ctx: Ctx): void {
  const [a, b] = st.ops;
  if (!isRm(a)) unsupported(st);
  const size = sizeOf([a, b]);
  operandSize(e, size, ctx.bits);
  const w = size === 8 ? 0 : 1;
  if (isGpr(b)) {
    e.op.push(n * 8 | w); // op r/m, reg
    modrm(e, b.num, a, ctx);
    useReg(e, b);
  } else if (b.kind === "mem" && isGpr(a)) {
    e.op.push(n * 8 | 2 | w); // op reg, r/m
    modrm(e, a.num, b, ctx);
    useReg(e, a);
  } else if (b.kind === "imm") {
    if (size === 8) {
      e.op.push(0x80); // 80 /n ib
      modrm(e, n, a, ctx);
      e.tail.push(Number(value(ctx, b.expr, 8) & 0xffn));
    } else if (shortImm(ctx, b)) {
      e.op.push(0x83); // 83 /n ib, sign-extended
      modrm(e, n, a, ctx);
      e.tail.push(Number(evalExpr(b.expr, ctx.scope).value & 0xffn));
    } else {
      e.op.push(0x81); // 81 /n iw/id
      modrm(e, n, a, ctx);
      pushOpImm(e, ctx, b, size);
    }
  } else unsupported(st);
}

export function mov(e: Enc, st: Insn, ctx: Ctx): void {
  const [a, b] = st.ops;
  const bits = ctx.bits;
  if (a.kind === "reg" && a.cls === "cr" || b.kind === "reg" && b.cls === "cr") {
    // 0F 22 /r: mov crN, reg; 0F 20 /r: mov reg, crN. The GPR is 32-bit outside 64-bit mode.
    const [cr, gpr] = a.kind === "reg" && a.cls === "cr" ? [a, b] : [b as Reg, a];
    if (!isGpr(gpr) || gpr.size !== (bits === 64 ? 64 : 32)) {
      throw new SyntaxError(`Control registers move to/from a ${bits === 64 ? 64 : 32}-bit GPR`);
    }
    e.op.push(0x0f, cr === a ? 0x22 : 0x20);
    modrm(e, cr.num, gpr, ctx);
    return;
  }
  if (a.kind === "reg" && a.cls === "seg" || b.kind === "reg" && b.cls === "seg") {
    // 8E /r: mov sreg, r/m16; 8C /r: mov r/m16, sreg (no operand-size prefix needed).
    const toSeg = a.kind === "reg" && a.cls === "seg";
    const [seg, other] = toSeg ? [a, b] : [b as Reg, a];
    if (toSeg && seg.name === "cs") throw new SyntaxError("cs cannot be loaded with mov");
    if (!isRm(other) || (other.kind === "mem" ? (other.size ?? 16) !== 16 : other.size === 8)) {
      unsupported(st);
    }
    e.op.push(toSeg ? 0x8e : 0x8c);
    modrm(e, seg.num, other, ctx);
    return;
  }
  if (!isRm(a)) unsupported(st);
  const size = sizeOf([a, b]);
  const w = size === 8 ? 0 : 1;
  if (isGpr(b)) {
    operandSize(e, size, bits);
    e.op.push(0x88 | w); // 88/89 /r: mov r/m, reg
    modrm(e, b.num, a, ctx);
    useReg(e, b);
  } else if (b.kind === "mem" && isGpr(a)) {
    operandSize(e, size, bits);
    e.op.push(0x8a | w); // 8A/8B /r: mov reg, r/m
    modrm(e, a.num, b, ctx);
    useReg(e, a);
  } else if (b.kind === "imm" && isGpr(a)) {
    operandSize(e, size, bits);
    useReg(e, a);
    if (a.num & 8) e.rex |= 1;
    if (size === 64) {
      const v = evalExpr(b.expr, ctx.scope).value;
      if (!isRelocatable(b.expr) && fits(asImm32For64(v), 32, true)) {
        e.op.push(0xc7); // REX.W C7 /0 id: sign-extended imm32
        e.rex &= ~1;
        modrm(e, 0, a, ctx);
        pushOpImm(e, ctx, b, 64);
      } else {
        e.op.push(0xb8 | (a.num & 7)); // REX.W B8+r io (movabs)
        pushImm(e.tail, value(ctx, b.expr, 64), 64);
      }
    } else {
      e.op.push((size === 8 ? 0xb0 : 0xb8) | (a.num & 7)); // B0+r ib / B8+r iw/id
      pushImm(e.tail, value(ctx, b.expr, size), size);
    }
  } else if (b.kind === "imm") {
    operandSize(e, size, bits);
    e.op.push(0xc6 | w); // C6/C7 /0 ib/iw/id
    modrm(e, 0, a, ctx);
    pushOpImm(e, ctx, b, size);
  } else unsupported(st);
}

export function exchangeLike(e: Enc, st: Insn, ctx: Ctx): void {
  let [a, b] = st.ops;
  const m = st.mnemonic;
  if ((m === "xchg" || m === "test") && isGpr(a) && b.kind === "mem") [a, b] = [b, a];
  if (!isRm(a)) unsupported(st);
  const size = sizeOf([a, b]);
  operandSize(e, size, ctx.bits);
  const w = size === 8 ? 0 : 1;
  if (isGpr(b)) {
    // test 84/85, xchg 86/87, cmpxchg 0F B0/B1, xadd 0F C0/C1; all r/m, reg.
    if (m === "test") e.op.push(0x84 | w);
    else if (m === "xchg") e.op.push(0x86 | w);
    else e.op.push(0x0f, (m === "xadd" ? 0xc0 : 0xb0) | w);
    modrm(e, b.num, a, ctx);
    useReg(e, b);
  } else if (m === "test" && b.kind === "imm") {
    e.op.push(0xf6 | w); // F6/F7 /0 imm
    modrm(e, 0, a, ctx);
    pushOpImm(e, ctx, b, size);
  } else unsupported(st);
}

export function pushPop(e: Enc, st: Insn, ctx: Ctx): void {
  const a = st.ops[0];
  const bits = ctx.bits;
  if (isGpr(a)) {
    // 50+r / 58+r; the default size is the stack width (64-bit in long mode, no REX.W).
    const ok = bits === 64 ? a.size === 64 || a.size === 16 : a.size === 16 || a.size === 32;
    if (!ok) {
      throw new SyntaxError(`Cannot ${st.mnemonic} a ${a.size}-bit register in bits ${bits}`);
    }
    if (a.size !== (bits === 64 ? 64 : bits)) e.legacy.push(0x66);
    if (a.num & 8) e.rex |= 1;
    e.op.push((st.mnemonic === "push" ? 0x50 : 0x58) | (a.num & 7));
  } else if (st.mnemonic === "push" && a.kind === "imm") {
    if (a.size !== undefined) throw new SyntaxError("push imm uses the default operand size");
    if (shortImm(ctx, a)) {
      e.op.push(0x6a); // 6A ib, sign-extended
      e.tail.push(Number(evalExpr(a.expr, ctx.scope).value & 0xffn));
    } else {
      e.op.push(0x68); // 68 iw/id
      pushOpImm(e, ctx, a, bits === 16 ? 16 : bits === 32 ? 32 : 64);
    }
  } else unsupported(st);
}

export function branch(e: Enc, st: Insn, ctx: Ctx): number[] {
  const m = st.mnemonic;
  const a = st.ops[0];
  const bits = ctx.bits;
  if (a.kind === "far") {
    // EA ptr16:16 / ptr16:32: far jump loading CS (how real → protected → long mode switch).
    if (m !== "jmp") unsupported(st);
    if (bits === 64) throw new SyntaxError("Direct far jmp is invalid in 64-bit mode");
    const size = a.size ?? (bits === 16 ? 16 : 32);
    if (size !== 16 && size !== 32) throw new SyntaxError("Far jmp offset is word or dword");
    if (size !== bits) e.legacy.push(0x66);
    e.op.push(0xea);
    pushImm(e.tail, value(ctx, a.off, size), size);
    pushImm(e.tail, value(ctx, a.sel, 16), 16);
    return finish(e, bits);
  }
  if (a.kind !== "imm" || a.size !== undefined) unsupported(st);
  const target = evalExpr(a.expr, ctx.scope);
  if (ctx.strict) value(ctx, a.expr, 64);
  if (bits === 16 && ctx.strict && (target.value < 0n || target.value > 0xffffn)) {
    throw new RangeError("Jump target is outside the 64 KiB code segment");
  }
  const cc = m[0] === "j" && m !== "jmp" ? CC[m.slice(1)] : -1;
  if (m !== "call" && !st.long) {
    const rel = target.value - BigInt(ctx.addr + e.legacy.length + 2);
    if (!target.known || fits(rel, 8, true)) {
      e.op.push(m === "jmp" ? 0xeb : m === "loop" ? 0xe2 : 0x70 | cc); // rel8 forms
      e.tail.push(Number(rel & 0xffn));
      return finish(e, bits);
    }
    if (m === "loop") {
      if (ctx.strict) throw new RangeError("loop target is out of rel8 range");
      e.op.push(0xe2);
      e.tail.push(0);
      return finish(e, bits);
    }
    st.long = true;
    ctx.grew = true;
  }
  // E9 / E8 / 0F 80+cc with rel16 (16-bit mode) or rel32.
  if (m === "jmp") e.op.push(0xe9);
  else if (m === "call") e.op.push(0xe8);
  else e.op.push(0x0f, 0x80 | cc);
  const width = bits === 16 ? 16 : 32;
  const end = ctx.addr + e.legacy.length + e.op.length + width / 8;
  const rel = target.value - BigInt(end);
  if (ctx.strict && bits !== 16 && !fits(rel, 32, true)) {
    throw new RangeError("Jump target is out of rel32 range");
  }
  pushImm(e.tail, rel, width);
  return finish(e, bits);
}
