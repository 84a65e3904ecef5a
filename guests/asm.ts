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
import type { ExprScope } from "./_expr.ts";
import type { Bits, Ctx, Stmt } from "./_asm_types.ts";
import { lineError, parse } from "./_asm_parse.ts";
import { pushImm, value } from "./_asm_encode.ts";
import { encode } from "./_asm_insn.ts";

export type { Bits } from "./_asm_types.ts";

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
