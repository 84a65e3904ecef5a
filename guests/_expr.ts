/**
 * Constant expressions for the assembler: numbers, labels, `$` and C-like operators.
 *
 * @module
 */

/** A parsed expression; labels are already scoped (`.local` → `global.local`). */
export type Expr =
  | { kind: "num"; value: bigint }
  | { kind: "label"; name: string }
  | { kind: "here" }
  | { kind: "unary"; op: string; arg: Expr }
  | { kind: "binary"; op: string; left: Expr; right: Expr };

/** How the assembler resolves names while evaluating. */
export interface ExprScope {
  /** Address of the statement being assembled (`$`). */
  here: number;
  /** Value of a label, or undefined while it is not yet known. */
  lookup(name: string): number | undefined;
}

/** Result of an evaluation: `known` is false while a label is still unresolved. */
export interface ExprValue {
  value: bigint;
  known: boolean;
}

const BINARY_PRECEDENCE: Record<string, number> = {
  "|": 1,
  "^": 2,
  "&": 3,
  "<<": 4,
  ">>": 4,
  "+": 5,
  "-": 5,
  "*": 6,
  "/": 6,
  "%": 6,
};

const TOKEN =
  /\s*(0x[0-9a-f_]+|0b[01_]+|[0-9][0-9_]*|'[^']'|"[^"]"|[.A-Za-z_][\w.]*|<<|>>|\$|[-+*/%&|^~()])/iy;

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    if (/^\s*$/.test(text.slice(TOKEN.lastIndex))) break;
    const start = TOKEN.lastIndex;
    const m = TOKEN.exec(text);
    if (m === null) {
      throw new SyntaxError(`Unexpected character in expression: ${text.slice(start)}`);
    }
    tokens.push(m[1]);
  }
  return tokens;
}

/**
 * Parses an expression. `scope` turns a leading-dot name into a local label of the last
 * global label; `isReserved` rejects register names used as values.
 */
export function parseExpr(
  text: string,
  options: { scope: string; isReserved(name: string): boolean },
): Expr {
  const tokens = tokenize(text);
  if (tokens.length === 0) throw new SyntaxError("Empty expression");
  let pos = 0;
  function primary(): Expr {
    const t = tokens[pos++];
    if (t === undefined) throw new SyntaxError(`Expression ends early: ${text}`);
    if (t === "(") {
      const e = binary(0);
      if (tokens[pos++] !== ")") throw new SyntaxError(`Missing ')' in expression: ${text}`);
      return e;
    }
    if (t === "-" || t === "+" || t === "~") return { kind: "unary", op: t, arg: primary() };
    if (t === "$") return { kind: "here" };
    if (/^[0-9]/.test(t)) return { kind: "num", value: BigInt(t.replaceAll("_", "")) };
    if (t[0] === "'" || t[0] === '"') return { kind: "num", value: BigInt(t.charCodeAt(1)) };
    if (/^[.A-Za-z_]/.test(t)) {
      if (options.isReserved(t.toLowerCase())) {
        throw new SyntaxError(`Register or keyword '${t}' cannot be used as a value`);
      }
      return { kind: "label", name: scopeLabel(t, options.scope) };
    }
    throw new SyntaxError(`Unexpected '${t}' in expression: ${text}`);
  }
  function binary(minPrecedence: number): Expr {
    let left = primary();
    for (;;) {
      const op = tokens[pos];
      const prec = op === undefined ? undefined : BINARY_PRECEDENCE[op];
      if (prec === undefined || prec <= minPrecedence) return left;
      pos++;
      left = { kind: "binary", op, left, right: binary(prec) };
    }
  }
  const e = binary(0);
  if (pos !== tokens.length) throw new SyntaxError(`Unexpected '${tokens[pos]}' in expression`);
  return e;
}

/** Expands `.local` to `global.local`, as NASM does. */
export function scopeLabel(name: string, scope: string): string {
  return name.startsWith(".") ? `${scope}${name}` : name;
}

/** True when the expression names a label or `$`, so its value may move between passes. */
export function isRelocatable(e: Expr): boolean {
  switch (e.kind) {
    case "num":
      return false;
    case "label":
    case "here":
      return true;
    case "unary":
      return isRelocatable(e.arg);
    case "binary":
      return isRelocatable(e.left) || isRelocatable(e.right);
  }
}

/** Evaluates with 64-bit-wide bigint arithmetic; unknown labels count as 0. */
export function evalExpr(e: Expr, scope: ExprScope): ExprValue {
  switch (e.kind) {
    case "num":
      return { value: e.value, known: true };
    case "here":
      return { value: BigInt(scope.here), known: true };
    case "label": {
      const v = scope.lookup(e.name);
      return v === undefined ? { value: 0n, known: false } : { value: BigInt(v), known: true };
    }
    case "unary": {
      const a = evalExpr(e.arg, scope);
      const value = e.op === "-" ? -a.value : e.op === "~" ? ~a.value : a.value;
      return { value, known: a.known };
    }
    case "binary": {
      const l = evalExpr(e.left, scope);
      const r = evalExpr(e.right, scope);
      return { value: applyBinary(e.op, l.value, r.value), known: l.known && r.known };
    }
  }
}

function applyBinary(op: string, a: bigint, b: bigint): bigint {
  switch (op) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    case "/":
    case "%":
      if (b === 0n) throw new RangeError("Division by zero in expression");
      return op === "/" ? a / b : a % b;
    case "<<":
      return a << b;
    case ">>":
      return a >> b;
    case "&":
      return a & b;
    case "|":
      return a | b;
    case "^":
      return a ^ b;
  }
  throw new SyntaxError(`Unknown operator '${op}'`);
}
