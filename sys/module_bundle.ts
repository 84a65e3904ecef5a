/**
 * One ES module out of a module graph, for Workers started under
 * `--allow-ffi` alone (sys/worker_url.ts): served as one `blob:` module
 * instead of a `blob:` module per file (~50 for a vCPU thread), so a Worker
 * loads one module, compiles its functions lazily, and leaves one small row
 * (~15 KB) in Deno's V8 code cache per start instead of one per module
 * (~190 KB). (A `data:` URL, the same in every process, let the code cache
 * serve the bundle, but Deno keeps ~15 bytes per byte of a module's URL in
 * each isolate: 4-5 MiB more per Worker for a 230 KB bundle, measured.)
 *
 * Each module becomes a function of the bundle, run once per isolate on
 * first import, that defines its exports object (getters, sorted, like a
 * module namespace) before its body runs:
 *
 * - an import of a binding that never changes (a `const`, a function or
 *   class never assigned, a namespace) becomes a `const` read once after
 *   the exporter ran (there are no import cycles, so it has run);
 * - an import of a binding that may change (`let`, `var`, anything not
 *   proven fixed) is a live binding: each reference to it is rewritten to a
 *   read of the exporter's getter. Where the local name is also declared in
 *   an inner scope (a parameter, a pattern, a method name), the bundle is
 *   refused rather than guess which references are the import's;
 * - `export *`, `export * as`, `export { a as b } from` and default exports
 *   resolve statically, as the module linker would: a missing or ambiguous
 *   imported name refuses the bundle (ES modules fail to link then);
 * - literal `import("./x.ts")` loads x from the bundle, lazily; imports
 *   the runtime resolves itself (`node:` modules) stay real imports;
 * - modules are registered per isolate by file URL
 *   (`globalThis[Symbol.for("denovmm.modules")]`), so two bundles loaded in
 *   one Worker (its entry, then a backend module it imports) share each
 *   module, as one module map would.
 *
 * Edits keep each module's line breaks, so its lines keep their numbers
 * within its function. The bundle is compiled once (`new Function`, parse
 * only) when built: what does not parse (top-level `await` in a module, a
 * misread statement) refuses the bundle. Every refusal throws
 * {@link BundleRefusal}; sys/worker_url.ts then serves the graph as
 * separate modules.
 *
 * @module
 */
import { bundleUrlNaming, REGISTRY_SYMBOL } from "./bundle_registry.ts";
import {
  BundleRefusal,
  type Edit,
  type ImportBinding,
  isLocalSpecifier,
  type ModuleShape,
} from "./module_shape.ts";

/** Where an export's value lives. */
type Origin =
  | { module: string; local: string }
  | { module: string; namespace: true }
  | { external: string; name: string };

const IDENT = /^[A-Za-z_$][\w$]*$/;
/** Bump when the bundle's shape changes: cached bundles of another version are rebuilt. */
export const BUNDLE_FORMAT = "denovmm-bundle 3";
/** Parentheses after these are not a parameter list. */
const CONTROL = new Set(["if", "for", "while", "switch", "with", "return", "typeof", "await"]);

/** The bundle's module loader, evaluated after its table of module functions. */
const RUNTIME = `const __b$R = (globalThis[Symbol.for(${
  JSON.stringify(REGISTRY_SYMBOL)
})] ??= new Map());
function __b$i(k) {
  let r = __b$R.get(k);
  if (r === undefined) {
    const f = __b$F[k];
    if (f === undefined) throw new Error("Module " + k + " is not in this bundle");
    const ns = Object.create(null);
    r = { ns, state: 0, error: undefined };
    __b$R.set(k, r);
    try {
      f(__b$i, __b$exports(ns), __b$imp, __b$X);
      r.state = 1;
    } catch (e) {
      r.state = 2;
      r.error = e;
      throw e;
    }
  } else if (r.state === 2) throw r.error;
  else if (r.state === 0) throw new Error("Module " + k + " imported while it loads (a cycle)");
  return r.ns;
}
function __b$exports(ns) {
  return (getters) => {
    for (const n of Object.keys(getters).sort()) {
      Object.defineProperty(ns, n, { get: getters[n], enumerable: true });
    }
    Object.defineProperty(ns, Symbol.toStringTag, { value: "Module" });
    Object.preventExtensions(ns);
  };
}
function __b$imp(k) {
  return Promise.resolve(k).then(__b$i);
}
`;

function prop(name: string): string {
  return IDENT.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
}

/** Static export resolution over the graph, as the ES module linker does it. */
class Linker {
  #shapes: Map<string, ModuleShape>;
  #names = new Map<string, Map<string, Origin | "ambiguous">>();

  constructor(shapes: Map<string, ModuleShape>) {
    this.#shapes = shapes;
  }

  /** Where `name` exported by `url` lives; undefined when not exported. */
  resolve(url: string, name: string): Origin | "ambiguous" | undefined {
    const s = this.#shapes.get(url);
    if (s === undefined) return { external: url, name };
    const local = s.localExports.get(name);
    if (local !== undefined) {
      const imp = s.imports.get(local);
      return imp === undefined ? { module: url, local } : this.#binding(imp);
    }
    const re = s.reExports.get(name);
    if (re !== undefined) return this.#binding(re);
    if (name === "default") return undefined;
    return this.exportNames(url).get(name);
  }

  #binding(b: ImportBinding): Origin | "ambiguous" | undefined {
    if (b.name !== "*") return this.resolve(b.from, b.name);
    return this.#shapes.has(b.from)
      ? { module: b.from, namespace: true }
      : { external: b.from, name: "*" };
  }

  /** Every name `url` exports, with where it lives (star names included). */
  exportNames(url: string): Map<string, Origin | "ambiguous"> {
    const known = this.#names.get(url);
    if (known) return known;
    const s = this.#shapes.get(url)!;
    const out = new Map<string, Origin | "ambiguous">();
    const fromStars = new Map<string, Origin | "ambiguous">();
    for (const star of s.stars) {
      if (!this.#shapes.has(star)) {
        throw new BundleRefusal(`${url}: export * from ${star}, which is not bundled`);
      }
      for (const [n, o] of this.exportNames(star)) {
        if (n === "default") continue;
        const had = fromStars.get(n);
        fromStars.set(n, had === undefined || sameOrigin(had, o) ? o : "ambiguous");
      }
    }
    for (const [n, o] of fromStars) out.set(n, o);
    this.#names.set(url, out);
    for (const n of [...s.localExports.keys(), ...s.reExports.keys()]) {
      const o = this.resolve(url, n);
      if (o === undefined) throw new BundleRefusal(`${url}: exports ${n}, which is not found`);
      out.set(n, o);
    }
    return out;
  }

  /** Whether an origin's value can change after its module ran. */
  live(o: Origin): boolean {
    return "local" in o && !this.#shapes.get(o.module)!.fixed.has(o.local);
  }
}

function sameOrigin(a: Origin | "ambiguous", b: Origin | "ambiguous"): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Token indices in binding positions (conservatively): declared names and
 * patterns of `let`/`const`/`var`, function and class names, parameter
 * lists (with their default values), `catch` parameters.
 */
function bindingTokens(s: ModuleShape): Uint8Array {
  const t = s.tokens;
  const v = (i: number) => (t[i] === undefined ? "" : s.src.slice(t[i].start, t[i].end));
  const mark = new Uint8Array(t.length);
  const markRange = (i: number) => {
    const m = t[i]?.match;
    if (m !== undefined && m >= 0) mark.fill(1, i, m + 1);
    else if (t[i]?.kind === "id") mark[i] = 1;
  };
  for (let i = 0; i < t.length; i++) {
    const w = v(i);
    if (t[i].kind === "id" && (w === "let" || w === "const" || w === "var")) {
      markRange(i + 1);
      // Later declarators: a `,` at this level, up to the statement's end.
      for (let k = i + 1; k < t.length; k++) {
        const x = v(k);
        if (x === ";" || x === ")" || x === "}" || x === "]") break;
        if (x === ",") markRange(k + 1);
        const m = t[k].match;
        if (m !== undefined && m >= 0) k = m;
      }
    } else if (t[i].kind === "id" && (w === "function" || w === "class")) {
      markRange(v(i + 1) === "*" ? i + 2 : i + 1);
    } else if (w === "=>" && t[i - 1]?.kind === "id") mark[i - 1] = 1;
    else if (w === "(" && t[i].match !== undefined && t[i].match! >= 0) {
      const after = v(t[i].match! + 1);
      if ((after === "{" || after === "=>") && !CONTROL.has(v(i - 1))) markRange(i);
    }
  }
  return mark;
}

/**
 * Edits turning each reference to a live import into a read through the
 * exporter's exports object.
 */
function liveEdits(s: ModuleShape, live: Map<string, string>): Edit[] {
  const t = s.tokens;
  const v = (i: number) => (t[i] === undefined ? "" : s.src.slice(t[i].start, t[i].end));
  const inStatement = new Uint8Array(t.length);
  for (const [a, b] of s.statements) inStatement.fill(1, a, b);
  const binding = bindingTokens(s);
  // The innermost open bracket of each token.
  const parent = new Int32Array(t.length).fill(-1);
  const open: number[] = [];
  for (let i = 0; i < t.length; i++) {
    parent[i] = open.length > 0 ? open[open.length - 1] : -1;
    const m = t[i].match;
    if (m !== undefined && m >= 0) open.push(i);
    while (open.length > 0 && t[open[open.length - 1]].match === i) open.pop();
  }
  const edits: Edit[] = [];
  for (let i = 0; i < t.length; i++) {
    if (t[i].kind !== "id" || inStatement[i]) continue;
    const ref = live.get(v(i));
    if (ref === undefined) continue;
    const prev = v(i - 1);
    const next = v(i + 1);
    if (prev === "." || prev === "?.") continue;
    const where = `${s.url}: ${v(i)} (offset ${t[i].start})`;
    if (binding[i]) throw new BundleRefusal(`${where} is declared again in an inner scope`);
    const inBrace = parent[i] >= 0 && v(parent[i]) === "{";
    if (inBrace && (prev === "{" || prev === ",") && next === ":") continue; // a key
    if (next === "(") {
      const m = t[i + 1].match;
      if (m !== undefined && m >= 0 && v(m + 1) === "{") {
        throw new BundleRefusal(`${where} is also a method's name`);
      }
    }
    const shorthand = inBrace && (prev === "{" || prev === ",") && (next === "}" || next === ",");
    edits.push({ start: t[i].start, end: t[i].end, text: shorthand ? `${v(i)}: ${ref}` : ref });
  }
  return edits;
}

function applyEdits(src: string, edits: Edit[]): string {
  const sorted = [...edits].sort((a, b) => a.start - b.start);
  let out = "";
  let at = 0;
  for (const e of sorted) {
    if (e.start < at) throw new BundleRefusal("overlapping edits");
    out += src.slice(at, e.start) + e.text;
    at = e.end;
  }
  return out + src.slice(at);
}

/** One module as a function of the bundle: its header line, then its body. */
function moduleFunction(s: ModuleShape, linker: Linker): string {
  const vars = new Map<string, string>();
  const head: string[] = [];
  s.requests.forEach((r, k) => {
    const name = `__b$m${k}`;
    vars.set(r, name);
    head.push(
      `${name} = ${
        isLocalSpecifier(r) ? `__b$i(${JSON.stringify(r)})` : `__b$X[${JSON.stringify(r)}]`
      }`,
    );
  });
  const consts: string[] = [];
  const live = new Map<string, string>();
  for (const [local, b] of s.imports) {
    const m = vars.get(b.from)!;
    if (b.name === "*") {
      consts.push(`${local} = ${m}`);
      continue;
    }
    const o = linker.resolve(b.from, b.name);
    if (o === undefined || o === "ambiguous") {
      throw new BundleRefusal(`${s.url}: import ${b.name} from ${b.from}: ${o ?? "not found"}`);
    }
    if (linker.live(o)) live.set(local, `${m}${prop(b.name)}`);
    else consts.push(`${local} = ${m}${prop(b.name)}`);
  }
  const getters: string[] = [];
  for (const [name, o] of linker.exportNames(s.url)) {
    if (o === "ambiguous") continue;
    let expr: string;
    const local = s.localExports.get(name);
    const re = s.reExports.get(name);
    if (local !== undefined) {
      const imp = s.imports.get(local);
      expr = imp === undefined
        ? local
        : imp.name === "*"
        ? vars.get(imp.from)!
        : `${vars.get(imp.from)!}${prop(imp.name)}`;
    } else if (re !== undefined) {
      expr = re.name === "*" ? vars.get(re.from)! : `${vars.get(re.from)!}${prop(re.name)}`;
    } else {
      // From a star: the first star module that exports it.
      const star = s.stars.find((st) => linker.exportNames(st).has(name))!;
      expr = `${vars.get(star)!}${prop(name)}`;
    }
    getters.push(`${JSON.stringify(name)}: () => ${expr}`);
  }
  let header = "";
  if (head.length > 0) header += `const ${head.join(", ")}; `;
  if (consts.length > 0) header += `const ${consts.join(", ")}; `;
  header += `__b$x({ ${getters.join(", ")} });`;
  const edits = live.size > 0 ? [...s.edits, ...liveEdits(s, live)] : s.edits;
  const body = applyEdits(s.src, edits);
  // Not parenthesized: V8 pre-parses the function and compiles it when the
  // module runs, and each inner function when first called (a bundle is
  // compiled from source at each start: lazily is faster, natively and under
  // the emulator, and what is never called is never compiled).
  return `${
    JSON.stringify(s.url)
  }: function (__b$i, __b$x, __b$imp, __b$X) { ${header}\n${body}\n},\n`;
}

/** Static import cycles are refused (the module runs before its importer). */
function checkCycles(shapes: Map<string, ModuleShape>, entries: readonly string[]): void {
  const state = new Map<string, number>();
  const visit = (u: string, path: string[]) => {
    const st = state.get(u);
    if (st === 2) return;
    if (st === 1) throw new BundleRefusal(`import cycle: ${[...path, u].join(" -> ")}`);
    state.set(u, 1);
    const s = shapes.get(u)!;
    for (const r of s.requests) if (shapes.has(r)) visit(r, [...path, u]);
    for (const r of s.dynamic) if (shapes.has(r) && !state.has(r)) visit(r, []);
    state.set(u, 2);
  };
  for (const e of entries) visit(e, []);
}

/** Options of {@link bundleModules}. */
export interface BundleOptions {
  /** Re-export the first entry's exports from the bundle (default true). */
  exports?: boolean;
  /**
   * Modules that are read (in `shapes`, for linking) but not bundled: the
   * isolate already runs them, and whoever runs the bundle registers their
   * namespaces by URL first (see {@link runBundleScript}).
   */
  provided?: ReadonlySet<string>;
}

/**
 * A bundle as a script: a function body over `__b$X` (the external
 * modules' namespaces by specifier) that runs the entries and returns the
 * first entry's namespace. What {@link bundleModules} wraps into a module,
 * and what {@link runBundleScript} runs without a module load.
 */
export interface BundleScript {
  /** The function body. */
  readonly body: string;
  /** Specifiers the body reads from `__b$X` (`node:` modules). */
  readonly externals: readonly string[];
  /** The first entry's export names, each a fixed binding. */
  readonly exportNames: readonly string[];
  /** Modules the body expects registered before it runs. */
  readonly provided: readonly string[];
}

/**
 * Bundles a module graph into one {@link BundleScript}.
 *
 * @param shapes every local module reachable from the entries (static and
 *   literal dynamic imports), read by `readModuleShape`
 * @param entries the modules to run, in order
 * @param options whether the first entry's exports are listed, which
 *   modules are provided
 * @returns the script
 * @throws BundleRefusal for a graph it cannot bundle faithfully
 * @example
 * ```ts
 * import { bundleScript } from "./module_bundle.ts";
 * import { readModuleShape } from "./module_shape.ts";
 * const m = readModuleShape("file:///s.js", "export const two = 1 + 1;");
 * const s = bundleScript(new Map([[m.url, m]]), [m.url]);
 * console.log(s.exportNames); // ["two"]
 * ```
 */
export function bundleScript(
  shapes: Map<string, ModuleShape>,
  entries: readonly string[],
  options: BundleOptions = {},
): BundleScript {
  const provided = options.provided ?? new Set<string>();
  for (const s of shapes.values()) {
    // A provided module's dynamic imports are its own business.
    for (const r of provided.has(s.url) ? s.requests : [...s.requests, ...s.dynamic]) {
      if (isLocalSpecifier(r) && !shapes.has(r)) throw new Error(`${r} was not read`);
    }
  }
  checkCycles(shapes, entries);
  const linker = new Linker(shapes);
  const externals = new Set<string>();
  for (const s of shapes.values()) {
    if (provided.has(s.url)) continue;
    for (const r of s.requests) if (!isLocalSpecifier(r)) externals.add(r);
  }
  let table = "const __b$F = {\n";
  for (const s of shapes.values()) if (!provided.has(s.url)) table += moduleFunction(s, linker);
  table += "};\n";
  let body = table + RUNTIME;
  // The provided modules the bundled ones import (not the roots themselves,
  // which may still be running: importing one of those would wait on it).
  const used = new Set<string>();
  for (const s of shapes.values()) {
    if (provided.has(s.url)) continue;
    for (const r of [...s.requests, ...s.dynamic]) if (provided.has(r)) used.add(r);
  }
  for (const p of used) {
    // Registered by the caller; checked here so that a missing one fails at once.
    body += `if (__b$R.get(${JSON.stringify(p)})?.state !== 1) throw new Error(${
      JSON.stringify(`${p} is not registered`)
    });\n`;
  }
  body += `const __b$E = __b$i(${JSON.stringify(entries[0])});\n`;
  for (const e of entries.slice(1)) body += `__b$i(${JSON.stringify(e)});\n`;
  body += "return __b$E;\n";
  try {
    // Parse only: top-level await in a module, or a misread, fails here.
    new Function("__b$X", `"use strict";\n${body}`);
  } catch (e) {
    throw new BundleRefusal(`the bundle does not compile: ${(e as Error).message}`);
  }
  const names: string[] = [];
  if (options.exports !== false) {
    for (const [name, o] of linker.exportNames(entries[0])) {
      if (o === "ambiguous") continue;
      if (linker.live(o)) {
        throw new BundleRefusal(`${entries[0]}: its export ${name} may change (live)`);
      }
      names.push(name);
    }
  }
  return { body, externals: [...externals], exportNames: names, provided: [...used] };
}

/**
 * Bundles a module graph into one ES module's source.
 *
 * @param shapes every local module reachable from the entries (static and
 *   literal dynamic imports), read by `readModuleShape`
 * @param entries the modules to run, in order
 * @param options whether the bundle re-exports the first entry's exports
 * @returns the bundle's JavaScript
 * @throws BundleRefusal for a graph it cannot bundle faithfully
 * @example
 * ```ts
 * import { bundleModules } from "./module_bundle.ts";
 * import { readModuleShape } from "./module_shape.ts";
 * const a = readModuleShape("file:///a.js", "export let n = 1; export function inc() { n++; }");
 * const m = readModuleShape("file:///m.js", 'import { n, inc } from "./a.js"; inc(); export const seen = n;');
 * const js = bundleModules(new Map([[a.url, a], [m.url, m]]), [m.url]);
 * console.log(js.includes("__b$m0.n")); // true: n is read live
 * ```
 */
export function bundleModules(
  shapes: Map<string, ModuleShape>,
  entries: readonly string[],
  options: BundleOptions = {},
): string {
  return scriptModule(bundleScript(shapes, entries, options));
}

/**
 * A {@link BundleScript} as an ES module's source: its externals imported,
 * its body run once, the entry's exports re-exported.
 *
 * @param script the bundle
 * @returns the module's JavaScript
 */
export function scriptModule(script: BundleScript): string {
  let out = "";
  const ext = script.externals;
  ext.forEach((x, k) => (out += `import * as __b$e${k} from ${JSON.stringify(x)};\n`));
  out += `const __b$X = { ${ext.map((x, k) => `${JSON.stringify(x)}: __b$e${k}`).join(", ")} };\n`;
  out += `const __b$E = (function (__b$X) {\n"use strict";\n${script.body}})(__b$X);\n`;
  return out + exportList(script.exportNames);
}

/** `export { ... }` of the entry namespace `__b$E`'s names. */
function exportList(names: readonly string[]): string {
  let out = "";
  names.forEach((n, k) => (out += `const __b$v${k} = __b$E${prop(n)};\n`));
  const list = names.map((n, k) => `__b$v${k} as ${IDENT.test(n) ? n : JSON.stringify(n)}`);
  if (list.length > 0) out += `export { ${list.join(", ")} };\n`;
  return out;
}

/**
 * Runs a {@link BundleScript} in this isolate without loading a module:
 * the body is compiled with `new Function` (its functions lazily, as in a
 * module), which skips the runtime's own analysis of a module's source
 * (~0.25 ms per KB of JavaScript for a `blob:` module, measured, against
 * ~0.02 ms for V8's parse) and needs no read permission. `node:` externals
 * load on first use (`process.getBuiltinModule`), so a module that needs
 * Deno's Node layer costs it only when it runs.
 *
 * @param script the bundle
 * @param provided the namespaces of {@link BundleScript.provided}, by URL
 * @param sourceUrl the name stack traces give the bundle
 * @returns the first entry's namespace
 * @throws BundleRefusal for an external that is not a `node:` module
 * @example
 * ```ts
 * import { bundleScript, runBundleScript } from "./module_bundle.ts";
 * import { readModuleShape } from "./module_shape.ts";
 * const m = readModuleShape("file:///run.js", "export const three = 1 + 2;");
 * const ns = runBundleScript(bundleScript(new Map([[m.url, m]]), [m.url]), new Map(), "run");
 * console.log(ns.three); // 3
 * ```
 */
export function runBundleScript(
  script: BundleScript,
  provided: ReadonlyMap<string, Record<string, unknown>>,
  sourceUrl: string,
): Record<string, unknown> {
  const externals = nodeExternals(script);
  if (externals === undefined) {
    const x = script.externals.find((x) => !x.startsWith("node:"));
    throw new BundleRefusal(`${x}: only node: modules load without a module load`);
  }
  const registry = moduleRegistry();
  for (const url of script.provided) {
    const ns = provided.get(url);
    if (ns === undefined) throw new Error(`${url}: its namespace was not given`);
    if (!registry.has(url)) registry.set(url, { ns, state: 1, error: undefined });
  }
  const run = new Function(
    "__b$X",
    `"use strict";\n${externals}${script.body}//# sourceURL=${sourceUrl}\n`,
  );
  return run({}) as Record<string, unknown>;
}

/**
 * Statements that make each of the script's externals a getter on `__b$X`
 * loading its `node:` module on first use (`process.getBuiltinModule`); for
 * {@link runBundleScript} and {@link scriptLoaderModule}, which run the body
 * without a module load. Undefined when an external is not a `node:` module.
 */
function nodeExternals(script: BundleScript): string | undefined {
  if (script.externals.some((x) => !x.startsWith("node:"))) return undefined;
  return script.externals.map((x, i) => {
    const k = JSON.stringify(x);
    return `let __b$n${i};
Object.defineProperty(__b$X, ${k}, {
  enumerable: true,
  get: () => (__b$n${i} ??= globalThis.process.getBuiltinModule(${k})),
});
`;
  }).join("");
}

/**
 * A small ES module that runs a {@link BundleScript} stored in a file: for
 * a Worker, which cannot load a local file under `--allow-ffi` alone, it
 * reads the file through libc (its own `dlopen`, so it imports nothing),
 * checks that the file's first line is still `head` (the stamps the bundle
 * was checked against), compiles the rest after the script's metadata line
 * with `new Function` and re-exports the entry's names. Deno then analyses
 * only this small module's source instead of the bundle's (~0.25 ms per KB,
 * measured: a vCPU thread's Worker starts in 77 ms instead of 91).
 * Only `node:` externals (loaded on first use) can be served this way.
 *
 * @param script the bundle (its body is read from the file, not used here)
 * @param path the file: `head`, a newline, the metadata line, the body
 * @param head the file's first line as it was when the bundle was checked
 * @param sourceUrl the name stack traces give the bundle
 * @returns the module's JavaScript, or undefined for a non-`node:` external
 * @example
 * ```ts ignore
 * const js = scriptLoaderModule(script, file.path, file.head, entry);
 * new Worker(moduleBlobUrl(js), { type: "module" });
 * ```
 */
export function scriptLoaderModule(
  script: BundleScript,
  path: string,
  head: string,
  sourceUrl: string,
): string | undefined {
  const externals = nodeExternals(script);
  if (script.provided.length > 0 || externals === undefined) return undefined;
  // The file's text is local to the function, so only the compiled
  // function's source stays alive once it has run.
  return `const __b$E = (() => {
  const text = (() => {
  const lib = Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32"], result: "i32" },
    read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    fstat: { parameters: ["i32", "buffer"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
  });
  try {
    const s = lib.symbols;
    const fd = s.open(new TextEncoder().encode(${JSON.stringify(path)} + "\\0"), 0o2000000);
    if (fd < 0) throw new Error(${JSON.stringify(`cannot open the module bundle ${path}`)});
    try {
      const st = new BigUint64Array(18);
      if (s.fstat(fd, st) !== 0) throw new Error(${JSON.stringify(`fstat ${path} failed`)});
      const buf = new Uint8Array(Number(st[6]));
      let n = 0;
      while (n < buf.length) {
        const r = Number(s.read(fd, buf.subarray(n), BigInt(buf.length - n)));
        if (r <= 0) break;
        n += r;
      }
      return new TextDecoder().decode(buf.subarray(0, n));
    } finally {
      s.close(fd);
    }
  } finally {
    lib.close();
  }
  })();
  const nl = text.indexOf("\\n");
  if (text.slice(0, nl) !== ${JSON.stringify(head)}) {
    throw new Error(${
    JSON.stringify(`the module bundle ${path} changed while the VMM started (a source changed?)`)
  });
  }
  const body = text.slice(text.indexOf("\\n", nl + 1) + 1);
  return new Function("__b$X", ${JSON.stringify(`"use strict";\n${externals}`)} + body + ${
    JSON.stringify(`//# sourceURL=${sourceUrl}\n`)
  })({});
})();
${exportList(script.exportNames)}`;
}

/** The isolate's module registry the bundles share (sys/bundle_registry.ts). */
type Registry = Map<string, { ns: unknown; state: number; error: unknown }>;
function moduleRegistry(): Registry {
  const g = globalThis as unknown as Record<symbol, Registry | undefined>;
  return (g[Symbol.for(REGISTRY_SYMBOL)] ??= new Map());
}

/**
 * A bundle served as a `blob:` module of this process. A bundle that
 * re-exports its entry names it in the URL's fragment, so
 * sys/bundle_registry.ts's `importServed` finds the entry in an isolate
 * where another bundle already ran it, without loading this one.
 *
 * @param js the bundle's JavaScript, from {@link bundleModules}
 * @param entry the file URL of the entry it re-exports, if it does
 * @returns the URL
 * @example
 * ```ts
 * import { moduleBlobUrl } from "./module_bundle.ts";
 * const url = moduleBlobUrl("export const a = 1;\n", "file:///a.ts");
 * console.log(url.endsWith("#denovmm-bundle=file%3A%2F%2F%2Fa.ts")); // true
 * console.log((await import(url)).a); // 1
 * ```
 */
export function moduleBlobUrl(js: string, entry?: string): string {
  const url = URL.createObjectURL(new Blob([js], { type: "text/javascript" }));
  return entry === undefined ? url : bundleUrlNaming(url, entry);
}

/**
 * A module's source as a `data:` URL: only what a URL cannot carry is
 * percent-encoded (`%`, `#`, control characters, non-ASCII as UTF-8).
 *
 * @param js JavaScript module source
 * @returns the URL
 * @example
 * ```ts
 * import { moduleDataUrl } from "./module_bundle.ts";
 * console.log(moduleDataUrl("export const a = 1;\n")); // data:text/javascript;charset=utf-8,export const a = 1;%0A
 * ```
 */
export function moduleDataUrl(js: string): string {
  return "data:text/javascript;charset=utf-8," +
    // deno-lint-ignore no-control-regex -- control characters are what must be encoded
    js.replace(/[%#\x00-\x1f\x7f]|[^\x00-\x7f]+/g, (c) => encodeURIComponent(c));
}
