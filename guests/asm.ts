/**
 * A small two-pass (iterated) x86 assembler for the project's test guests.
 *
 * It understands a NASM-like Intel syntax for the instructions the guests need, in 16-, 32- and
 * 64-bit mode, and nothing more: anything else is rejected with a SyntaxError or RangeError that
 * names the line. Jumps start short (rel8) and grow to rel16/rel32 when their target is out of
 * reach; passes repeat until no label moves.
 *
 * Encoding reminders used below:
 * - ModRM = mod(2) reg(3) rm(3). mod 3 means a register operand; rm 4 (32/64-bit addressing) means
 *   a SIB byte follows; mod 0 rm 5 is disp32 (RIP-relative in 64-bit mode, so absolute addresses
 *   in 64-bit mode use SIB with base 5 and no index instead).
 * - SIB = scale(2) index(3) base(3); index 4 means "no index".
 * - REX = 0100WRXB: W selects 64-bit operands, R/X/B extend ModRM.reg, SIB.index, ModRM.rm or
 *   SIB.base to reach r8..r15.
 * - 0x66 toggles the operand size 16<->32, 0x67 the address size; both are relative to the mode.
 *
 * @module
 */
import {
  evalExpr,
  type Expr,
  type ExprScope,
  isRelocatable,
  parseExpr,
  scopeLabel,
} from "./_expr.ts";
import { isReserved, type Reg, register } from "./_registers.ts";

/** Processor mode an instruction is assembled for (`bits` directive). */
export type Bits = 16 | 32 | 64;

/** Options of {@linkcode assemble}. */
export interface AssembleOptions {
  /** Address of the first byte (NASM `org`); labels are absolute. Default 0. */
  origin?: number;
  /** Mode at the start of the source; `bits N` lines switch it. Default 16. */
  bits?: Bits;
}

/** One emitted instruction, kept so tests can compare it with a disassembler. */
export interface AsmInstruction {
  /** Absolute address of the first byte. */
  address: number;
  /** Length in bytes. */
  size: number;
  /** Mode it was assembled for. */
  bits: Bits;
  /** Lowercase mnemonic as written, with prefixes (`lock xadd`, `rep stosd`). */
  mnemonic: string;
  /** Source text of the line. */
  text: string;
  /** 1-based source line. */
  line: number;
}

/** Output of {@linkcode assemble}. */
export interface AsmOutput {
  /** Flat binary, to be loaded at `origin`. */
  code: Uint8Array;
  /** Address of `code[0]`. */
  origin: number;
  /** Every label (locals as `global.local`) → absolute address. */
  labels: Record<string, number>;
  /** Every instruction in address order. */
  instructions: AsmInstruction[];
}

type Size = 8 | 16 | 32 | 64;

interface Mem {
  kind: "mem";
  size?: Size;
  base?: Reg;
  index?: Reg;
  scale: number;
  disp?: Expr;
}

interface Imm {
  kind: "imm";
  size?: Size;
  expr: Expr;
}

interface Far {
  kind: "far";
  size?: Size;
  sel: Expr;
  off: Expr;
}

type Operand = Reg | Mem | Imm | Far;

interface Insn {
  kind: "insn";
  mnemonic: string;
  prefixes: string[];
  ops: Operand[];
  bits: Bits;
  line: number;
  text: string;
  /** Sticky: once a jump needed rel16/rel32 it stays long, so passes converge. */
  long: boolean;
}

type Stmt =
  | { kind: "label"; name: string; line: number; text: string }
  | { kind: "align"; n: number; line: number; text: string }
  | { kind: "resb"; n: number; line: number; text: string }
  | { kind: "data"; width: 1 | 2 | 4 | 8; items: (Expr | number[])[]; line: number; text: string }
  | Insn;

interface Ctx {
  bits: Bits;
  scope: ExprScope;
  strict: boolean;
  addr: number;
  grew: boolean;
}

const MAX_PASSES = 32;

/**
 * Assembles `source` into a flat binary.
 *
 * Syntax: one statement per line, `;` comments, `label:` (a leading dot makes it local to the
 * previous global label), `bits 16|32|64`, `align N`, `resb N` (zeros), `db`/`dw`/`dd`/`dq` with
 * expressions (`db` also takes "strings"), operands `reg`, `imm-expr`, `[base + index*scale +
 * disp]` with an optional `byte|word|dword|qword [ptr]`, and `sel:off` for far jumps.
 *
 * @example
 * ```ts
 * import { assemble } from "./asm.ts";
 * const out = assemble("start: mov dx, 0x3f8\nout dx, al\nhlt", { origin: 0x1000 });
 * // out.code = ba f8 03 ee f4, out.labels.start = 0x1000
 * ```
 */
export function assemble(source: string, options: AssembleOptions = {}): AsmOutput {
  const origin = options.origin ?? 0;
  const stmts = parse(source, options.bits ?? 16);
  let prev = new Map<string, number>();
  let stable = false;
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    // Passes repeat until no label moves; then one strict pass checks ranges and emits.
    const r = layout(stmts, origin, prev, stable);
    if (stable && !r.changed) {
      return {
        code: new Uint8Array(r.bytes),
        origin,
        labels: Object.fromEntries(r.labels),
        instructions: r.instructions,
      };
    }
    stable = !r.changed && pass > 0;
    prev = r.labels;
  }
  throw new RangeError("Assembly did not converge");
}

function layout(stmts: Stmt[], origin: number, prev: Map<string, number>, strict: boolean) {
  const labels = new Map<string, number>();
  const bytes: number[] = [];
  const instructions: AsmInstruction[] = [];
  let changed = false;
  const scope: ExprScope = {
    here: origin,
    lookup: (name) => labels.get(name) ?? prev.get(name),
  };
  const ctx: Ctx = { bits: 16, scope, strict, addr: origin, grew: false };
  for (const st of stmts) {
    const addr = origin + bytes.length;
    scope.here = addr;
    try {
      switch (st.kind) {
        case "label":
          labels.set(st.name, addr);
          if (prev.get(st.name) !== addr) changed = true;
          break;
        case "align":
          while ((origin + bytes.length) % st.n !== 0) bytes.push(0);
          break;
        case "resb":
          for (let i = 0; i < st.n; i++) bytes.push(0);
          break;
        case "data":
          for (const item of st.items) {
            if (Array.isArray(item)) bytes.push(...item);
            else pushImm(bytes, value(ctx, item, st.width * 8), st.width * 8);
          }
          break;
        case "insn": {
          ctx.bits = st.bits;
          ctx.addr = addr;
          ctx.grew = false;
          const enc = encode(st, ctx);
          if (ctx.grew) changed = true;
          bytes.push(...enc);
          if (strict) {
            instructions.push({
              address: addr,
              size: enc.length,
              bits: st.bits,
              mnemonic: [...st.prefixes, st.mnemonic].join(" "),
              text: st.text,
              line: st.line,
            });
          }
          break;
        }
      }
    } catch (e) {
      throw lineError(e, st.line, st.text);
    }
  }
  return { labels, bytes, changed, instructions };
}

function lineError(e: unknown, line: number, text: string): Error {
  if (!(e instanceof Error)) return new Error(String(e));
  const msg = `${e.message} at line ${line}: ${text.trim()}`;
  if (e instanceof RangeError) return new RangeError(msg);
  if (e instanceof SyntaxError) return new SyntaxError(msg);
  return new Error(msg);
}

// ---------------------------------------------------------------------------------------------
// Parsing

const SIZE_KEYWORDS: Record<string, Size> = { byte: 8, word: 16, dword: 32, qword: 64 };
const DATA_WIDTH: Record<string, 1 | 2 | 4 | 8> = { db: 1, dw: 2, dd: 4, dq: 8 };
const PREFIXES = new Set(["lock", "rep"]);

function parse(source: string, startBits: Bits): Stmt[] {
  const stmts: Stmt[] = [];
  const defined = new Set<string>();
  let scope = "";
  let bits = startBits;
  source.split("\n").forEach((raw, i) => {
    const line = i + 1;
    let text = stripComment(raw).trim();
    try {
      const lm = /^([.A-Za-z_][\w.]*)\s*:/.exec(text);
      if (lm !== null) {
        const name = scopeLabel(lm[1], scope);
        if (isReserved(lm[1].toLowerCase())) {
          throw new SyntaxError(`'${lm[1]}' is reserved and cannot be a label`);
        }
        if (defined.has(name)) throw new SyntaxError(`Label '${name}' is defined twice`);
        defined.add(name);
        if (!lm[1].startsWith(".")) scope = lm[1];
        stmts.push({ kind: "label", name, line, text });
        text = text.slice(lm[0].length).trim();
      }
      if (text === "") return;
      const words = text.split(/\s+/);
      const prefixes: string[] = [];
      while (PREFIXES.has(words[0].toLowerCase()) && words.length > 1) {
        prefixes.push(words.shift()!.toLowerCase());
      }
      const mnemonic = words[0].toLowerCase();
      let rest = text;
      for (let k = 0; k <= prefixes.length; k++) rest = rest.replace(/^\S+\s*/, "");
      const exprOpts = { scope, isReserved };
      const constant = (s: string) => {
        const e = parseExpr(s, exprOpts);
        if (isRelocatable(e)) throw new SyntaxError(`'${s}' must be a constant`);
        return Number(evalExpr(e, { here: 0, lookup: () => undefined }).value);
      };
      if (mnemonic === "bits") {
        const b = constant(rest);
        if (b !== 16 && b !== 32 && b !== 64) throw new SyntaxError("bits must be 16, 32 or 64");
        bits = b;
      } else if (mnemonic === "align") {
        const n = constant(rest);
        if (n <= 0 || (n & (n - 1)) !== 0) throw new RangeError("align needs a power of two");
        stmts.push({ kind: "align", n, line, text });
      } else if (mnemonic === "resb") {
        const n = constant(rest);
        if (n < 0 || n > 1 << 24) throw new RangeError("resb size out of range");
        stmts.push({ kind: "resb", n, line, text });
      } else if (mnemonic in DATA_WIDTH) {
        const width = DATA_WIDTH[mnemonic];
        const items = splitOperands(rest).map((s) => {
          if (/^(".*"|'.*')$/s.test(s) && (s.length !== 3 || width === 1)) {
            if (width !== 1) throw new SyntaxError("Strings are only allowed in db");
            return [...s.slice(1, -1)].map((c) => {
              const code = c.charCodeAt(0);
              if (code > 0x7f) throw new RangeError("Only ASCII strings are supported");
              return code;
            });
          }
          return parseExpr(s, exprOpts);
        });
        stmts.push({ kind: "data", width, items, line, text });
      } else {
        if (prefixes.length > 0 && PREFIXES.has(mnemonic)) {
          throw new SyntaxError("Prefix without an instruction");
        }
        const ops = rest === "" ? [] : splitOperands(rest).map((s) => parseOperand(s, scope));
        stmts.push({ kind: "insn", mnemonic, prefixes, ops, bits, line, text, long: false });
      }
    } catch (e) {
      throw lineError(e, line, raw);
    }
  });
  return stmts;
}

function stripComment(line: string): string {
  let quote = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== "") {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ";") return line.slice(0, i);
  }
  return line;
}

function splitOperands(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = "";
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote !== "") {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[" || c === "(") depth++;
    else if (c === "]" || c === ")") depth--;
    else if (c === "," && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  if (out.some((s) => s === "")) throw new SyntaxError("Empty operand");
  return out;
}

function parseOperand(text: string, scope: string): Operand {
  const exprOpts = { scope, isReserved };
  let size: Size | undefined;
  let rest = text;
  const sm = /^(byte|word|dword|qword)(\s+ptr)?\b\s*/i.exec(rest);
  if (sm !== null) {
    size = SIZE_KEYWORDS[sm[1].toLowerCase()];
    rest = rest.slice(sm[0].length);
  }
  if (rest.startsWith("[")) {
    if (!rest.endsWith("]")) throw new SyntaxError(`Unterminated memory operand '${text}'`);
    return parseMem(rest.slice(1, -1), size, scope);
  }
  const reg = register(rest);
  if (reg !== undefined) {
    if (size !== undefined) throw new SyntaxError(`Size keyword on register operand '${text}'`);
    return reg;
  }
  const colon = rest.indexOf(":");
  if (colon >= 0 && !/['"]/.test(rest)) {
    return {
      kind: "far",
      size,
      sel: parseExpr(rest.slice(0, colon), exprOpts),
      off: parseExpr(rest.slice(colon + 1), exprOpts),
    };
  }
  return { kind: "imm", size, expr: parseExpr(rest, exprOpts) };
}

function parseMem(inner: string, size: Size | undefined, scope: string): Mem {
  if (inner.includes(":")) throw new SyntaxError("Segment overrides are not supported");
  const mem: Mem = { kind: "mem", size, scale: 1 };
  // Split into signed top-level terms; register terms become base/index, the rest the disp.
  const terms: { sign: string; text: string }[] = [];
  let depth = 0;
  let start = 0;
  let sign = "+";
  for (let i = 0; i <= inner.length; i++) {
    const c = inner[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (i === inner.length || (depth === 0 && (c === "+" || c === "-"))) {
      const t = inner.slice(start, i).trim();
      if (t !== "") terms.push({ sign, text: t });
      else if (i < inner.length && start !== i) throw new SyntaxError("Empty term in address");
      sign = c ?? "+";
      start = i + 1;
    }
  }
  const disp: string[] = [];
  for (const t of terms) {
    const scaled = /^(\w+)\s*\*\s*(\w+)$/.exec(t.text);
    let reg = register(t.text);
    let scale = 1;
    if (reg === undefined && scaled !== null) {
      const a = register(scaled[1]);
      const b = register(scaled[2]);
      if (a !== undefined || b !== undefined) {
        reg = a ?? b;
        scale = Number(a !== undefined ? scaled[2] : scaled[1]);
        if (![1, 2, 4, 8].includes(scale)) throw new SyntaxError("Scale must be 1, 2, 4 or 8");
        if (mem.index !== undefined) throw new SyntaxError("Address has two index registers");
      }
    }
    if (reg === undefined) {
      disp.push(`${t.sign}(${t.text})`);
      continue;
    }
    if (reg.cls !== "gpr" || reg.size === 8) {
      throw new SyntaxError(`'${reg.name}' cannot address memory`);
    }
    if (t.sign !== "+") throw new SyntaxError("Registers cannot be subtracted in an address");
    if (scale === 1 && mem.base === undefined && scaled === null) mem.base = reg;
    else if (mem.index === undefined) {
      mem.index = reg;
      mem.scale = scale;
    } else throw new SyntaxError("Address has more than two registers");
  }
  if (disp.length > 0) mem.disp = parseExpr(disp.join(""), { scope, isReserved });
  return mem;
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers

interface Enc {
  legacy: number[];
  /** REX.WRXB bits (8/4/2/1). */
  rex: number;
  needRex: boolean;
  noRex: boolean;
  op: number[];
  tail: number[];
}

function newEnc(prefixes: string[]): Enc {
  const legacy = prefixes.map((p) => (p === "lock" ? 0xf0 : 0xf3));
  return { legacy, rex: 0, needRex: false, noRex: false, op: [], tail: [] };
}

function finish(e: Enc, bits: Bits): number[] {
  const rex = e.rex !== 0 || e.needRex;
  if (rex && bits !== 64) throw new SyntaxError("r8-r15, spl-dil and 64-bit operands need bits 64");
  if (rex && e.noRex) throw new SyntaxError("ah, ch, dh and bh cannot be used with a REX prefix");
  return [...e.legacy, ...(rex ? [0x40 | e.rex] : []), ...e.op, ...e.tail];
}

function operandSize(e: Enc, size: Size, bits: Bits): void {
  if (size === 16 && bits !== 16) e.legacy.push(0x66);
  else if (size === 32 && bits === 16) e.legacy.push(0x66);
  else if (size === 64) {
    if (bits !== 64) throw new SyntaxError("64-bit operands need bits 64");
    e.rex |= 8;
  }
}

function useReg(e: Enc, r: Reg): void {
  if (r.high8) e.noRex = true;
  if (r.needsRex) e.needRex = true;
}

function fits(v: bigint, width: number, signedOnly = false): boolean {
  const half = 1n << BigInt(width - 1);
  return v >= -half && v < (signedOnly ? half : half * 2n);
}

/** Evaluates an expression that must fit `width` bits (signed or unsigned). */
function value(ctx: Ctx, expr: Expr, width: number, signedOnly = false): bigint {
  const v = evalExpr(expr, ctx.scope);
  if (ctx.strict) {
    if (!v.known) throw new SyntaxError(`Undefined label '${unknownLabel(expr, ctx.scope)}'`);
    if (!fits(v.value, width, signedOnly)) {
      throw new RangeError(`Value 0x${v.value.toString(16)} does not fit in ${width} bits`);
    }
  }
  return v.value;
}

function unknownLabel(e: Expr, scope: ExprScope): string {
  if (e.kind === "label") return scope.lookup(e.name) === undefined ? e.name : "";
  if (e.kind === "unary") return unknownLabel(e.arg, scope);
  if (e.kind === "binary") return unknownLabel(e.left, scope) || unknownLabel(e.right, scope);
  return "";
}

function pushImm(out: number[], v: bigint, width: number): void {
  for (let i = 0; i < width / 8; i++) out.push(Number((v >> BigInt(8 * i)) & 0xffn));
}

/** A 64-bit value as the sign-extended imm32 that encodes it (or out of range). */
function asImm32For64(v: bigint): bigint {
  return v >= 1n << 63n ? v - (1n << 64n) : v;
}

const MEM16: Record<string, number> = {
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
function modrm(e: Enc, reg: number, rm: Reg | Mem, ctx: Ctx): void {
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

function isGpr(o: Operand | undefined): o is Reg {
  return o?.kind === "reg" && o.cls === "gpr";
}

function isRm(o: Operand | undefined): o is Reg | Mem {
  return isGpr(o) || o?.kind === "mem";
}

/** Operand size of an instruction from its register operands and size keywords. */
function sizeOf(ops: Operand[]): Size {
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
function pushOpImm(e: Enc, ctx: Ctx, imm: Imm, size: Size): void {
  if (size === 64) {
    const v = asImm32For64(evalExpr(imm.expr, ctx.scope).value);
    if (ctx.strict && !fits(v, 32, true)) {
      throw new RangeError("64-bit immediate must be a sign-extended 32-bit value");
    }
    value(ctx, imm.expr, 64);
    pushImm(e.tail, v, 32);
  } else pushImm(e.tail, value(ctx, imm.expr, size), size);
}

function shortImm(ctx: Ctx, imm: Imm): boolean {
  if (isRelocatable(imm.expr)) return false;
  return fits(asImm32For64(evalExpr(imm.expr, ctx.scope).value), 8, true);
}

function expectOps(st: Insn, n: number): void {
  if (st.ops.length !== n) {
    throw new SyntaxError(`${st.mnemonic} takes ${n} operand${n === 1 ? "" : "s"}`);
  }
}

function unsupported(st: Insn): never {
  const forms = st.ops.map((o) => (o.kind === "reg" ? o.cls : o.kind)).join(", ");
  throw new SyntaxError(`Unsupported operand form for ${st.mnemonic}: (${forms})`);
}

// ---------------------------------------------------------------------------------------------
// Instructions

const SIMPLE: Record<string, number[]> = {
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

const ALU: Record<string, number> = {
  add: 0,
  or: 1,
  adc: 2,
  sbb: 3,
  and: 4,
  sub: 5,
  xor: 6,
  cmp: 7,
};
const SHIFT: Record<string, number> = { rol: 0, ror: 1, shl: 4, sal: 4, shr: 5, sar: 7 };
const UNARY: Record<string, [number, number]> = {
  inc: [0xfe, 0],
  dec: [0xfe, 1],
  not: [0xf6, 2],
  neg: [0xf6, 3],
};
const CC: Record<string, number> = {
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
const STOS: Record<string, Size> = { stosb: 8, stosw: 16, stosd: 32, stosq: 64 };
const MOVS: Record<string, Size> = { movsb: 8, movsw: 16, movsd: 32, movsq: 64 };
const LOCKABLE = new Set([...Object.keys(ALU), ...Object.keys(UNARY), "xadd", "xchg", "cmpxchg"]);

function encode(st: Insn, ctx: Ctx): number[] {
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

function alu(e: Enc, st: Insn, n: number, ctx: Ctx): void {
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

function mov(e: Enc, st: Insn, ctx: Ctx): void {
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

function exchangeLike(e: Enc, st: Insn, ctx: Ctx): void {
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

function pushPop(e: Enc, st: Insn, ctx: Ctx): void {
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

function branch(e: Enc, st: Insn, ctx: Ctx): number[] {
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
