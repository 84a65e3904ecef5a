/**
 * What one ES module imports, exports and declares, read from its tokens
 * (sys/js_tokens.ts), for sys/module_bundle.ts: the bundler turns each
 * module into a function over an exports object, so it must know every
 * import and export statement, which of its exported bindings can change
 * (a live binding its importers must read through the exports object), and
 * the edits that remove the statements from the body.
 *
 * Anything this reading cannot account for throws {@link BundleRefusal}: the
 * graph is then served as separate modules (sys/worker_url.ts), never
 * bundled wrongly. Refused: import attributes, `import.meta` other than
 * `url` (sys/worker_url.ts pins that to the file URL before), destructuring
 * in an `export` declaration, `import defer`/`source`, names the bundler
 * reserves (`__b$...`).
 *
 * @module
 */
import { type Token, tokenize } from "./js_tokens.ts";

/** A module shape the bundler cannot prove it handles; the caller falls back. */
export class BundleRefusal extends Error {
  /** The error's name. */
  override name = "BundleRefusal";
}

/** An import binding: the module it comes from and the name there (`*`: the namespace). */
export interface ImportBinding {
  /** The resolved module: a `file:` URL, or a specifier the runtime loads (`node:fs`). */
  readonly from: string;
  /** The exported name, `default`, or `*` for `import * as`. */
  readonly name: string;
}

/** A text edit on the module's source. */
export interface Edit {
  /** Offset where the replaced text starts. */
  readonly start: number;
  /** Offset after it. */
  readonly end: number;
  /** The replacement. */
  readonly text: string;
}

/** One module, read. */
export interface ModuleShape {
  /** The module's URL. */
  readonly url: string;
  /** Its (prepared JavaScript) source. */
  readonly src: string;
  /** Its tokens. */
  readonly tokens: Token[];
  /** Modules it imports or re-exports from, resolved, in source order (no repeats). */
  readonly requests: string[];
  /** Local modules it imports with a literal `import("...")`, resolved. */
  readonly dynamic: string[];
  /** Import bindings by local name. */
  readonly imports: Map<string, ImportBinding>;
  /** Exported names bound here, with their local binding. */
  readonly localExports: Map<string, string>;
  /** Exported names taken from another module (`export { a as b } from`, `export * as ns from`). */
  readonly reExports: Map<string, ImportBinding>;
  /** Modules whose names it re-exports with `export * from`. */
  readonly stars: string[];
  /** Local bindings that never change: `const` names, functions and classes never assigned. */
  readonly fixed: Set<string>;
  /** Token index ranges [start, end) of its import and export statements. */
  readonly statements: Array<[number, number]>;
  /** Edits that remove the import/export syntax and the literal dynamic imports. */
  readonly edits: Edit[];
}

const ASSIGN = new Set([
  "=",
  "+=",
  "-=",
  "*=",
  "/=",
  "%=",
  "**=",
  "<<=",
  ">>=",
  ">>>=",
  "&=",
  "|=",
  "^=",
  "&&=",
  "||=",
  "??=",
]);
const STATEMENT_START = new Set([
  "const",
  "let",
  "var",
  "function",
  "class",
  "export",
  "import",
  "if",
  "for",
  "while",
  "return",
  "throw",
  "try",
  "switch",
  "do",
]);

/** The default export's local name when the module gives it none. */
export const DEFAULT_LOCAL = "__b$default";

/**
 * Whether a specifier names a local module (bundled) rather than one the
 * runtime loads itself (`node:`, `npm:`, `data:`...).
 *
 * @param spec an import specifier
 * @returns true for relative and `file:` specifiers
 * @example
 * ```ts
 * import { isLocalSpecifier } from "./module_shape.ts";
 * console.log(isLocalSpecifier("./a.ts"), isLocalSpecifier("node:fs")); // true false
 * ```
 */
export function isLocalSpecifier(spec: string): boolean {
  return spec.startsWith("./") || spec.startsWith("../") || spec.startsWith("file:") ||
    spec.startsWith("/");
}

/** Newlines only: what replaces removed text, so the lines after keep their numbers. */
function blank(text: string): string {
  return text.replace(/[^\n]/g, "");
}

/**
 * Reads one module's imports, exports and declarations.
 *
 * @param url the module's URL (relative specifiers resolve against it)
 * @param src its JavaScript source
 * @returns its shape
 * @throws BundleRefusal for a shape the bundler does not handle
 * @example
 * ```ts
 * import { readModuleShape } from "./module_shape.ts";
 * const s = readModuleShape("file:///m.js", 'import { a } from "./a.js"; export const b = a;');
 * console.log(s.requests, [...s.localExports]); // ["file:///a.js"] [["b", "b"]]
 * ```
 */
export function readModuleShape(url: string, src: string): ModuleShape {
  let tokens: Token[];
  try {
    tokens = tokenize(src);
  } catch (e) {
    throw new BundleRefusal(`${url}: ${(e as Error).message}`);
  }
  const shape: ModuleShape = {
    url,
    src,
    tokens,
    requests: [],
    dynamic: [],
    imports: new Map(),
    localExports: new Map(),
    reExports: new Map(),
    stars: [],
    fixed: new Set(),
    statements: [],
    edits: [],
  };
  new ShapeReader(shape).read();
  return shape;
}

/** The statement-level reading of one module. */
class ShapeReader {
  #s: ModuleShape;
  #t: Token[];
  #src: string;
  /** Functions and classes declared at the top level (fixed unless assigned). */
  #decls = new Set<string>();

  constructor(shape: ModuleShape) {
    this.#s = shape;
    this.#t = shape.tokens;
    this.#src = shape.src;
  }

  #v(i: number): string {
    const t = this.#t[i];
    return t === undefined ? "" : this.#src.slice(t.start, t.end);
  }

  #refuse(why: string, i: number): never {
    throw new BundleRefusal(`${this.#s.url}: ${why} (offset ${this.#t[i]?.start ?? -1})`);
  }

  #resolve(spec: string): string {
    return isLocalSpecifier(spec) ? new URL(spec, this.#s.url).href : spec;
  }

  #string(i: number): string {
    if (this.#t[i]?.kind !== "str") this.#refuse("expected a module specifier", i);
    return JSON.parse(this.#v(i).replace(/^'(.*)'$/s, (_, s: string) => JSON.stringify(s)));
  }

  #request(spec: string): string {
    const r = this.#resolve(spec);
    if (!this.#s.requests.includes(r)) this.#s.requests.push(r);
    return r;
  }

  /** The end of a statement whose last token is `i`: past an optional `;`. */
  #end(i: number): number {
    if (this.#v(i + 1) === "with" || this.#v(i + 1) === "assert") {
      this.#refuse("import attributes", i + 1);
    }
    return this.#v(i + 1) === ";" ? i + 2 : i + 1;
  }

  /** Removes tokens [from, to) (keeping line breaks) and records the statement. */
  #remove(from: number, to: number, text = ""): void {
    const start = this.#t[from].start;
    const end = this.#t[to - 1].end;
    this.#s.edits.push({ start, end, text: text + blank(this.#src.slice(start, end)) });
    this.#s.statements.push([from, to]);
  }

  read(): void {
    const t = this.#t;
    // Top-level statements only: bracketed code is skipped whole.
    for (let i = 0; i < t.length;) {
      const v = this.#v(i);
      const prev = this.#v(i - 1);
      const after = this.#v(i + 1);
      if (t[i].kind === "id" && v === "import" && prev !== "." && after !== "(" && after !== ".") {
        i = this.#import(i);
        continue;
      }
      if (t[i].kind === "id" && v === "export") {
        i = this.#export(i);
        continue;
      }
      if ((v === "let" || v === "var" || v === "const") && t[i].kind === "id") {
        this.#declarators(i, v === "const");
      }
      if ((v === "function" || v === "class") && prev !== "=" && prev !== "(") {
        const name = this.#v(i + 1) === "*" ? i + 2 : i + 1;
        if (t[name]?.kind === "id") this.#decls.add(this.#v(name));
      }
      const m = t[i].match;
      i = m !== undefined && m >= 0 ? m + 1 : i + 1;
    }
    this.#scanAll();
    for (const d of this.#decls) if (!this.#assigned(d)) this.#s.fixed.add(d);
  }

  /** `import ...` at token i; returns the index after the statement. */
  #import(i: number): number {
    let j = i + 1;
    if (this.#t[j].kind === "str") {
      this.#request(this.#string(j));
      const end = this.#end(j);
      this.#remove(i, end);
      return end;
    }
    const bindings: Array<[string, string]> = [];
    const first = this.#v(j);
    if (first === "defer" || first === "source") this.#refuse(`import ${first}`, j);
    if ((this.#t[j].kind === "id" && first !== "from") || this.#v(j + 1) === "from") {
      bindings.push([first, "default"]);
      j++;
      if (this.#v(j) === ",") j++;
    }
    if (this.#v(j) === "*") {
      if (this.#v(j + 1) !== "as") this.#refuse("import * without as", j);
      bindings.push([this.#v(j + 2), "*"]);
      j += 3;
    } else if (this.#v(j) === "{") {
      const close = this.#t[j].match!;
      for (const [name, local] of this.#specifiers(j + 1, close)) bindings.push([local, name]);
      j = close + 1;
    }
    if (this.#v(j) !== "from") this.#refuse("unexpected import syntax", j);
    const from = this.#request(this.#string(j + 1));
    for (const [local, name] of bindings) this.#s.imports.set(local, { from, name });
    const end = this.#end(j + 1);
    this.#remove(i, end);
    return end;
  }

  /** `a, b as c, "s" as d` between tokens [from, to): [external name, local name] pairs. */
  #specifiers(from: number, to: number): Array<[string, string]> {
    const out: Array<[string, string]> = [];
    for (let j = from; j < to;) {
      const name = this.#t[j].kind === "str" ? this.#string(j) : this.#v(j);
      let local = name;
      j++;
      if (this.#v(j) === "as") {
        local = this.#t[j + 1].kind === "str" ? this.#string(j + 1) : this.#v(j + 1);
        j += 2;
      }
      out.push([name, local]);
      if (this.#v(j) === ",") j++;
      else if (j < to) this.#refuse("unexpected specifier syntax", j);
    }
    return out;
  }

  /** `export ...` at token i; returns the index after what it removed. */
  #export(i: number): number {
    const s = this.#s;
    const next = this.#v(i + 1);
    if (next === "*") {
      let j = i + 2;
      let as: string | undefined;
      if (this.#v(j) === "as") {
        as = this.#t[j + 1].kind === "str" ? this.#string(j + 1) : this.#v(j + 1);
        j += 2;
      }
      if (this.#v(j) !== "from") this.#refuse("export * without from", j);
      const from = this.#request(this.#string(j + 1));
      if (as === undefined) s.stars.push(from);
      else s.reExports.set(as, { from, name: "*" });
      const end = this.#end(j + 1);
      this.#remove(i, end);
      return end;
    }
    if (next === "{") {
      const close = this.#t[i + 1].match!;
      const list = this.#specifiers(i + 2, close);
      if (this.#v(close + 1) === "from") {
        const from = this.#request(this.#string(close + 2));
        for (const [name, as] of list) s.reExports.set(as, { from, name });
        const end = this.#end(close + 2);
        this.#remove(i, end);
        return end;
      }
      for (const [local, as] of list) s.localExports.set(as, local);
      const end = this.#v(close + 1) === ";" ? close + 2 : close + 1;
      this.#remove(i, end);
      return end;
    }
    if (next === "default") return this.#exportDefault(i);
    // export const|let|var|function|async function|class
    let j = i + 1;
    const kw = this.#v(j) === "async" ? this.#v(++j) : this.#v(j);
    if (kw === "const" || kw === "let" || kw === "var") {
      for (const name of this.#declarators(j, kw === "const")) s.localExports.set(name, name);
    } else if (kw === "function" || kw === "class") {
      const n = this.#v(j + 1) === "*" ? j + 2 : j + 1;
      const name = this.#v(n);
      s.localExports.set(name, name);
      this.#decls.add(name);
    } else this.#refuse(`unexpected export ${kw}`, j);
    this.#remove(i, i + 1);
    return i + 1;
  }

  #exportDefault(i: number): number {
    const s = this.#s;
    let j = i + 2;
    if (this.#v(j) === "async" && this.#v(j + 1) === "function") j++;
    const kw = this.#v(j);
    if (kw === "function" || kw === "class") {
      const n = this.#v(j + 1) === "*" ? j + 2 : j + 1;
      const named = this.#t[n].kind === "id" && this.#v(n) !== "extends";
      const name = named ? this.#v(n) : DEFAULT_LOCAL;
      s.localExports.set("default", name);
      this.#decls.add(name);
      this.#remove(i, i + 2);
      // An anonymous declaration gets a name: insert it after `function`/`*`/`class`.
      if (!named) {
        s.edits.push({ start: this.#t[n - 1].end, end: this.#t[n - 1].end, text: ` ${name}` });
      }
      return i + 2;
    }
    s.localExports.set("default", DEFAULT_LOCAL);
    s.fixed.add(DEFAULT_LOCAL);
    this.#remove(i, i + 2, `const ${DEFAULT_LOCAL} =`);
    return i + 2;
  }

  /**
   * The names declared by `const|let|var` at token i (simple names only),
   * recording `const` ones as fixed. A destructuring pattern is fine in a
   * plain declaration (its names stay unproven, so live) but refused in an
   * exported one, whose names must be known.
   */
  #declarators(i: number, isConst: boolean): string[] {
    const names: string[] = [];
    const exported = this.#v(i - 1) === "export" ||
      (this.#v(i - 1) === "async" && this.#v(i - 2) === "export");
    for (let j = i + 1; j < this.#t.length;) {
      const t = this.#t[j];
      if (t.kind === "id") {
        names.push(this.#v(j));
        if (isConst) this.#s.fixed.add(this.#v(j));
      } else if (exported) this.#refuse("destructuring in an export declaration", j);
      // Skip to the next declarator: a `,` at this level, or the end.
      let k = t.match !== undefined && t.match >= 0 ? t.match + 1 : j + 1;
      for (; k < this.#t.length; k++) {
        const u = this.#t[k];
        const v = this.#v(k);
        if (v === ",") break;
        if (v === ";" || v === ")" || v === "}" || v === "]") return names;
        if (u.nl && STATEMENT_START.has(v)) return names;
        if (u.match !== undefined && u.match >= 0) k = u.match;
      }
      if (this.#v(k) !== ",") return names;
      j = k + 1;
    }
    return names;
  }

  /** Whether a top-level function or class name is ever assigned. */
  #assigned(name: string): boolean {
    const t = this.#t;
    for (let i = 0; i < t.length; i++) {
      if (t[i].kind !== "id" || this.#v(i) !== name) continue;
      const prev = this.#v(i - 1);
      if (prev === "." || prev === "?.") continue;
      if (ASSIGN.has(this.#v(i + 1)) || this.#v(i + 1) === "++" || this.#v(i + 1) === "--") {
        return true;
      }
      if (prev === "++" || prev === "--") return true;
    }
    return false;
  }

  /**
   * Every token: reserved names and `import.meta` are refused; a literal
   * `import("./x.ts")` is recorded and turned into the bundle's loader.
   */
  #scanAll(): void {
    const t = this.#t;
    for (let i = 0; i < t.length; i++) {
      if (t[i].kind !== "id") continue;
      const v = this.#v(i);
      if (v.startsWith("__b$")) this.#refuse(`reserved name ${v}`, i);
      if (v !== "import" || this.#v(i - 1) === ".") continue;
      if (this.#v(i + 1) === ".") this.#refuse("import.meta", i);
      if (this.#v(i + 1) !== "(") continue;
      if (t[i + 2]?.kind !== "str" || this.#v(i + 3) !== ")") continue;
      const spec = this.#string(i + 2);
      if (!isLocalSpecifier(spec)) continue;
      const url = this.#resolve(spec);
      if (!this.#s.dynamic.includes(url)) this.#s.dynamic.push(url);
      this.#s.edits.push({
        start: t[i].start,
        end: t[i + 3].end,
        text: `__b$imp(${JSON.stringify(url)})`,
      });
    }
  }
}
