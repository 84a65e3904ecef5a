/**
 * The assembler's parser: NASM-like Intel syntax into statements.
 *
 * @module
 */
import { evalExpr, isRelocatable, parseExpr, scopeLabel } from "./_expr.ts";
import { isReserved, register } from "./_registers.ts";
import type { Bits, Mem, Operand, Size, Stmt } from "./_asm_types.ts";

export const SIZE_KEYWORDS: Record<string, Size> = { byte: 8, word: 16, dword: 32, qword: 64 };
export const DATA_WIDTH: Record<string, 1 | 2 | 4 | 8> = { db: 1, dw: 2, dd: 4, dq: 8 };
export const PREFIXES = new Set(["lock", "rep"]);

export function parse(source: string, startBits: Bits): Stmt[] {
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

export function stripComment(line: string): string {
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

export function splitOperands(text: string): string[] {
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

export function parseOperand(text: string, scope: string): Operand {
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

export function parseMem(inner: string, size: Size | undefined, scope: string): Mem {
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

/** Adds the source line to an error, keeping its class. */
export function lineError(e: unknown, line: number, text: string): Error {
  if (!(e instanceof Error)) return new Error(String(e));
  const msg = `${e.message} at line ${line}: ${text.trim()}`;
  if (e instanceof RangeError) return new RangeError(msg);
  if (e instanceof SyntaxError) return new SyntaxError(msg);
  return new Error(msg);
}
