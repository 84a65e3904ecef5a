/**
 * A JavaScript tokenizer, just enough for sys/module_bundle.ts to find a
 * module's import and export statements and the identifiers it must
 * rewrite, without being fooled by strings, template literals, regular
 * expressions or comments. It does not build a syntax tree: the bundler
 * reads the token stream, and what it cannot prove it refuses.
 *
 * Regular expression or division after a `/` is decided by the previous
 * token, as most JavaScript tools without a parser do: a regular expression
 * may start after an operator, an opening bracket, `}`, a keyword such as
 * `return`, or at the start; after a name, a number, a string, `)` or `]`
 * the `/` divides. (`if (x) /re/.test(s)` would be read as a division; the
 * bundler's syntax check turns such a misreading into a refusal.)
 *
 * @module
 */

/** What a token is. `tpl`: a template literal's piece (head, middle or tail). */
export type TokenKind = "id" | "num" | "str" | "tpl" | "re" | "punc";

/** One token: its kind and where it is in the source. */
export interface Token {
  /** Its kind. */
  readonly kind: TokenKind;
  /** Offset of its first character. */
  readonly start: number;
  /** Offset after its last character. */
  readonly end: number;
  /** A line break lies between it and the previous token. */
  readonly nl: boolean;
  /** For a template piece: it ends with `${` (an expression follows). */
  readonly open?: boolean;
  /** For an opening bracket: the index of its closing bracket (-1: unmatched). */
  match?: number;
}

const PUNCTUATORS = [
  ">>>=",
  "...",
  "===",
  "!==",
  "**=",
  "<<=",
  ">>=",
  ">>>",
  "&&=",
  "||=",
  "??=",
  "=>",
  "==",
  "!=",
  "<=",
  ">=",
  "&&",
  "||",
  "??",
  "?.",
  "++",
  "--",
  "+=",
  "-=",
  "*=",
  "/=",
  "%=",
  "&=",
  "|=",
  "^=",
  "**",
  "<<",
  ">>",
];
/** Keywords after which a `/` starts a regular expression. */
const BEFORE_REGEX = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
  "extends",
]);
const NUMBER_RE =
  /(?:0[xXoObB][\da-fA-F_]+n?|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?n?)/y;

function isIdStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 36 || c === 95 || c === 92 ||
    c > 127;
}

function isIdPart(c: number): boolean {
  return isIdStart(c) || (c >= 48 && c <= 57);
}

function isNewline(c: number): boolean {
  return c === 10 || c === 13 || c === 0x2028 || c === 0x2029;
}

/** Thrown for source the tokenizer cannot read (an unterminated literal). */
export class TokenizeError extends Error {
  override name = "TokenizeError";
}

/**
 * Splits JavaScript source into tokens (comments and white space dropped)
 * and matches its brackets.
 *
 * @param src JavaScript source
 * @returns the tokens, each opening bracket with its `match`
 * @throws TokenizeError on an unterminated string, template, comment or
 *   regular expression, or an unbalanced bracket
 * @example
 * ```ts
 * import { tokenize } from "./js_tokens.ts";
 * const src = 'import { a } from "./a.ts";';
 * console.log(tokenize(src).map((t) => src.slice(t.start, t.end)));
 * ```
 */
export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  /** Open brackets: token index, or -1 for a template's `${`. */
  const stack: number[] = [];
  let i = 0;
  let nl = false;
  if (src.startsWith("#!")) { while (i < src.length && !isNewline(src.charCodeAt(i))) i++; }
  const push = (kind: TokenKind, start: number, end: number, open?: boolean) => {
    out.push(open === undefined ? { kind, start, end, nl } : { kind, start, end, nl, open });
    nl = false;
  };
  const regexAllowed = (): boolean => {
    const p = out[out.length - 1];
    if (p === undefined) return true;
    if (p.kind === "id") return BEFORE_REGEX.has(src.slice(p.start, p.end));
    if (p.kind === "tpl") return p.open === true;
    if (p.kind !== "punc") return false;
    const v = src.slice(p.start, p.end);
    return v !== ")" && v !== "]" && v !== "++" && v !== "--";
  };
  /** Scans a template from `i` (after a backtick or a `}`) to its next piece's end. */
  const template = (start: number) => {
    for (;;) {
      if (i >= src.length) throw new TokenizeError(`Unterminated template at ${start}`);
      const c = src.charCodeAt(i);
      if (c === 92) i += 2;
      else if (c === 96) {
        i++;
        push("tpl", start, i, false);
        return;
      } else if (c === 36 && src.charCodeAt(i + 1) === 123) {
        i += 2;
        push("tpl", start, i, true);
        stack.push(-1);
        return;
      } else i++;
    }
  };
  while (i < src.length) {
    const c = src.charCodeAt(i);
    if (isNewline(c)) {
      nl = true;
      i++;
    } else if (c === 32 || c === 9 || c === 11 || c === 12 || c === 0xa0 || c === 0xfeff) i++;
    else if (c === 47 && src.charCodeAt(i + 1) === 47) {
      while (i < src.length && !isNewline(src.charCodeAt(i))) i++;
    } else if (c === 47 && src.charCodeAt(i + 1) === 42) {
      const end = src.indexOf("*/", i + 2);
      if (end < 0) throw new TokenizeError(`Unterminated comment at ${i}`);
      if (/[\n\r\u2028\u2029]/.test(src.slice(i, end))) nl = true;
      i = end + 2;
    } else if (isIdStart(c) || (c === 35 && isIdStart(src.charCodeAt(i + 1)))) {
      const start = i++;
      while (i < src.length) {
        const d = src.charCodeAt(i);
        if (d === 92) i += 2; // \uXXXX: its hex digits are id parts
        else if (isIdPart(d)) i++;
        else break;
      }
      push("id", start, i);
    } else if ((c >= 48 && c <= 57) || (c === 46 && /\d/.test(src[i + 1] ?? ""))) {
      NUMBER_RE.lastIndex = i;
      const m = NUMBER_RE.exec(src)!;
      push("num", i, i += m[0].length);
    } else if (c === 34 || c === 39) {
      const start = i++;
      for (;;) {
        if (i >= src.length) throw new TokenizeError(`Unterminated string at ${start}`);
        const d = src.charCodeAt(i);
        if (d === 92) i += 2;
        else if (d === c) break;
        else if (d === 10 || d === 13) throw new TokenizeError(`Unterminated string at ${start}`);
        else i++;
      }
      push("str", start, ++i);
    } else if (c === 96) {
      const start = i++;
      template(start);
    } else if (c === 125 && stack.length > 0 && stack[stack.length - 1] === -1) {
      stack.pop();
      const start = i++;
      template(start);
    } else if (c === 47 && regexAllowed()) {
      const start = i++;
      let cls = false;
      for (;;) {
        if (i >= src.length || isNewline(src.charCodeAt(i))) {
          throw new TokenizeError(`Unterminated regular expression at ${start}`);
        }
        const d = src.charCodeAt(i++);
        if (d === 92) i++;
        else if (d === 91) cls = true;
        else if (d === 93) cls = false;
        else if (d === 47 && !cls) break;
      }
      while (i < src.length && isIdPart(src.charCodeAt(i))) i++;
      push("re", start, i);
    } else {
      let len = 1;
      for (const p of PUNCTUATORS) {
        if (src.startsWith(p, i)) {
          // `a?.5:b` is a conditional, not optional chaining.
          if (p === "?." && /\d/.test(src[i + 2] ?? "")) continue;
          len = p.length;
          break;
        }
      }
      const start = i;
      i += len;
      push("punc", start, i);
      if (len === 1 && (c === 40 || c === 91 || c === 123)) {
        out[out.length - 1].match = -1;
        stack.push(out.length - 1);
      } else if (len === 1 && (c === 41 || c === 93 || c === 125)) {
        const open = stack.pop();
        const want = c === 41 ? 40 : c === 93 ? 91 : 123;
        if (open === undefined || open < 0 || src.charCodeAt(out[open].start) !== want) {
          throw new TokenizeError(`Unbalanced ${src[start]} at ${start}`);
        }
        out[open].match = out.length - 1;
      }
    }
  }
  if (stack.length > 0) throw new TokenizeError("Unbalanced brackets at the end");
  return out;
}
