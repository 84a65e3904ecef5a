/**
 * The assembler's internal types: operands, statements and the pass context.
 *
 * @module
 */
import type { Expr, ExprScope } from "./_expr.ts";
import type { Reg } from "./_registers.ts";

/** Processor mode an instruction is assembled for (`bits` directive). */
export type Bits = 16 | 32 | 64;

export type Size = 8 | 16 | 32 | 64;

export interface Mem {
  kind: "mem";
  size?: Size;
  base?: Reg;
  index?: Reg;
  scale: number;
  disp?: Expr;
}

export interface Imm {
  kind: "imm";
  size?: Size;
  expr: Expr;
}

export interface Far {
  kind: "far";
  size?: Size;
  sel: Expr;
  off: Expr;
}

export type Operand = Reg | Mem | Imm | Far;

export interface Insn {
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

export type Stmt =
  | { kind: "label"; name: string; line: number; text: string }
  | { kind: "align"; n: number; line: number; text: string }
  | { kind: "resb"; n: number; line: number; text: string }
  | { kind: "data"; width: 1 | 2 | 4 | 8; items: (Expr | number[])[]; line: number; text: string }
  | Insn;

export interface Ctx {
  bits: Bits;
  scope: ExprScope;
  strict: boolean;
  addr: number;
  grew: boolean;
}
