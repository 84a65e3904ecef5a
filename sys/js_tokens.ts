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
/**
 * One token (or white space, or a comment) at the sticky position; the
 * group says which. The regular expression engine does the character work:
 * this runs once per start after a change, before the JavaScript is warm,
 * where a loop over characters was ~10x slower.
 */
const TOKEN_RE = new RegExp(
  [
    /([^\S\n\r\u2028\u2029]+)/, // 1: blanks
    /([\n\r\u2028\u2029][\s]*)/, // 2: line breaks (and blanks after them)
    /(\/\/[^\n\r\u2028\u2029]*)/, // 3: line comment
    /(\/\*[\s\S]*?\*\/)/, // 4: block comment
    /(#?(?:[A-Za-z_$\u0080-\uffff]|\\u[\da-fA-F{}]+)(?:[\w$\u0080-\uffff]|\\u[\da-fA-F{}]+)*)/, // 5: name
    /(0[xXoObB][\da-fA-F_]+n?|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?n?)/, // 6: number
    /("(?:[^"\\\n\r]|\\[\s\S])*"|'(?:[^'\\\n\r]|\\[\s\S])*')/, // 7: string
    /(>>>=|\.\.\.|===|!==|\*\*=|<<=|>>=|>>>|&&=|\|\|=|\?\?=|=>|==|!=|<=|>=|&&|\|\||\?\?|\?\.(?!\d)|\+\+|--|\+=|-=|\*=|%=|&=|\|=|\^=|\*\*|<<|>>|[{}()[\];,<>+\-*%&|^!~?:=.@])/, // 8: punctuator
  ].map((r) => r.source).join("|"),
  "y",
);
/** A template's characters up to its end or its next `${`. */
const TEMPLATE_RE = /(?:[^`\\$]|\\[\s\S]|\$(?!\{))*/y;
/** A regular expression literal after its opening `/`: body, `/`, flags. */
const REGEX_RE = /(?:[^\\/[\n\r]|\\[^\n\r]|\[(?:[^\]\\\n\r]|\\[^\n\r])*\])*\/[\w$]*/y;

/** Thrown for source the tokenizer cannot read (an unterminated literal). */
export class TokenizeError extends Error {
  /** The error's name. */
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
  if (src.startsWith("#!")) {
    const end = src.search(/[\n\r\u2028\u2029]/);
    i = end < 0 ? src.length : end;
  }
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
    TEMPLATE_RE.lastIndex = i;
    TEMPLATE_RE.exec(src);
    i = TEMPLATE_RE.lastIndex;
    if (src.charCodeAt(i) === 96) {
      push("tpl", start, ++i, false);
    } else if (src.startsWith("${", i)) {
      i += 2;
      push("tpl", start, i, true);
      stack.push(-1);
    } else throw new TokenizeError(`Unterminated template at ${start}`);
  };
  while (i < src.length) {
    const c = src.charCodeAt(i);
    if (c === 96) {
      const start = i++;
      template(start);
      continue;
    }
    if (c === 125 && stack.length > 0 && stack[stack.length - 1] === -1) {
      stack.pop();
      const start = i++;
      template(start);
      continue;
    }
    if (
      c === 47 && src.charCodeAt(i + 1) !== 47 && src.charCodeAt(i + 1) !== 42 && regexAllowed()
    ) {
      const start = i;
      REGEX_RE.lastIndex = i + 1;
      if (REGEX_RE.exec(src) === null) {
        throw new TokenizeError(`Unterminated regular expression at ${start}`);
      }
      i = REGEX_RE.lastIndex;
      push("re", start, i);
      continue;
    }
    if (c === 47 && !(src.charCodeAt(i + 1) === 47 || src.charCodeAt(i + 1) === 42)) {
      // Division (or `/=`).
      const len = src.charCodeAt(i + 1) === 61 ? 2 : 1;
      push("punc", i, i += len);
      continue;
    }
    TOKEN_RE.lastIndex = i;
    const m = TOKEN_RE.exec(src);
    if (m === null) {
      if (c === 34 || c === 39) throw new TokenizeError(`Unterminated string at ${i}`);
      if (c === 47) throw new TokenizeError(`Unterminated comment at ${i}`);
      throw new TokenizeError(`Unexpected character at ${i}`);
    }
    const start = i;
    i = TOKEN_RE.lastIndex;
    if (m[1] !== undefined || m[3] !== undefined) continue;
    if (m[2] !== undefined) {
      nl = true;
      continue;
    }
    if (m[4] !== undefined) {
      if (/[\n\r\u2028\u2029]/.test(m[4])) nl = true;
      continue;
    }
    if (m[5] !== undefined) push("id", start, i);
    else if (m[6] !== undefined) push("num", start, i);
    else if (m[7] !== undefined) push("str", start, i);
    else {
      push("punc", start, i);
      if (i - start === 1 && (c === 40 || c === 91 || c === 123)) {
        out[out.length - 1].match = -1;
        stack.push(out.length - 1);
      } else if (i - start === 1 && (c === 41 || c === 93 || c === 125)) {
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
