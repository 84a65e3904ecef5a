/**
 * Module URLs that a Worker can load under `deno run --allow-ffi` alone.
 *
 * Deno checks read permission when a Worker loads local modules (a Worker's
 * graph counts as a dynamic import), but the VMM's only permission is FFI -
 * which can read files anyway, through libc. So when read access is not
 * granted, the module graph is read with libc, transpiled to JavaScript and
 * served from memory: the same code, loaded with no extra permission. With
 * read access granted (or in a compiled binary, where modules are embedded)
 * the file URL is used as is.
 *
 * **One bundle per entry.** A Worker's entry and everything it imports is
 * served as one `blob:` module (sys/module_bundle.ts): one load instead of
 * ~50, functions compiled lazily, and one small row (~15 KB) added to
 * `DENO_DIR/v8_code_cache_v2` per start instead of ~45 (~190 KB) that no
 * start reads again (Deno keys its code cache by module URL, and a `blob:`
 * URL is new in every process). A `data:` URL would be the same in every
 * process, so the code cache would serve it, but Deno holds ~15 bytes per
 * byte of a module's URL in each isolate that loads it: 4-5 MiB more per
 * Worker for a vCPU thread's 230 KB bundle (`bench/memory_bench.ts`). A
 * Worker that later imports a module its bundle already ran (a vCPU
 * thread's backend and devices) gets it at once through
 * sys/bundle_registry.ts's `importServed`.
 *
 * **The main thread too.** {@link importBundled} runs a bundle in the
 * calling isolate as a script (main.ts's command): no module load, the
 * modules the isolate already runs shared rather than copied.
 *
 * **Fallback.** A graph the bundler cannot prove it bundles faithfully
 * (sys/module_shape.ts lists what it refuses) is served as before: one
 * `blob:` JavaScript module per file, importing each other, built once per
 * process. {@link bundleRefusals} says why; a test checks that every Worker
 * entry of the project bundles. `DENOVMM_NO_BUNDLE=1` (read through libc)
 * serves every graph that way (benchmarks compare the two).
 *
 * **Prepared once, kept on disk.** Each TypeScript module is transpiled by
 * Deno's own transpiler (`stripTypeScriptTypes` from `node:module`, the swc
 * transform Deno's loader uses), comments dropped, `import.meta.url` pinned
 * to the module's file URL (a string literal, so `new URL("./_worker.ts",
 * import.meta.url)` inside a served module resolves to a file again - and
 * {@link workerUrl} serves that one too). sys/module_cache.ts keeps each
 * prepared module and each bundle on disk, checked against the stamps of the
 * files they came from: a start after no change reads one file per bundle
 * and fstats its modules. The transpiler lives in Deno's Node compatibility
 * layer, whose first use costs ~35-40 ms (then ~1 ms per module), so it is
 * loaded (synchronously, through `process.getBuiltinModule`) only on a cache
 * miss: the first start after a module changed.
 *
 * The blob path's import rewriting is textual: relative and `file:`
 * specifiers of static imports, re-exports and `import("...")` with a
 * literal; comments are dropped first (doc examples contain imports).
 * Import cycles are refused either way (the project has none).
 *
 * @module
 */
import { cstring, readFileFfi } from "./fd.ts";
import { libc } from "./libc.ts";
import {
  type BundleFile,
  cachedBundle,
  cachedModule,
  sourceStamp,
  storeBundle,
  storeModule,
} from "./module_cache.ts";
import {
  BUNDLE_FORMAT,
  type BundleScript,
  bundleScript,
  moduleBlobUrl,
  moduleDataUrl,
  runBundleScript,
  scriptLoaderModule,
  scriptModule,
} from "./module_bundle.ts";
import { BundleRefusal, type ModuleShape, readModuleShape } from "./module_shape.ts";

/** `stripTypeScriptTypes` of `node:module`. */
type StripTypes = (code: string, options: { mode: "transform"; sourceUrl: string }) => string;

/**
 * Static imports, re-exports and literal `import()` (after any character
 * that cannot end a name: the transpiler writes `()=>import("./x.ts")`):
 * group 3 is the specifier.
 */
const IMPORT_RE =
  /((?:^|[\s;}])(?:import|export)\b[^"';]*?\bfrom\s*|(?:^|[^\w$.])import\s*\(?\s*)(["'])([^"'\n]+)\2/g;
const cache = new Map<string, string>();
/** Bundle URLs served so far, by entry list. */
const bundles = new Map<string, string>();
const decoder = new TextDecoder();
let stripTypes: StripTypes | undefined;
const counts = { cached: 0, transpiled: 0, bundlesBuilt: 0, bundlesCached: 0, refused: 0 };
const refusals: string[] = [];
/** `DENOVMM_NO_BUNDLE` set (read through libc): serve separate modules, as before bundles. */
let bundlesOff: boolean | undefined;
/** The files that make a bundle what it is, besides its modules. */
const BUNDLER_FILES = ["./module_bundle.ts", "./module_shape.ts", "./js_tokens.ts"].map((f) =>
  new URL(f, import.meta.url).href
);
/** A refused graph's cache entry starts with this (then the reason). */
const REFUSED = "refused: ";

function readGranted(url: URL): boolean {
  try {
    return Deno.permissions.querySync({ name: "read", path: url }).state === "granted";
  } catch {
    return false;
  }
}

function isLocal(spec: string): boolean {
  return spec.startsWith("./") || spec.startsWith("../") || spec.startsWith("file:");
}

/** Comments dropped, `import.meta.url` pinned to `key`, types stripped. */
function prepareSource(text: string, key: string, strip: StripTypes): string {
  // Block comments and whole-line comments go (doc examples import too).
  const source = text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "")
    .replace(/\bimport\.meta\.url\b/g, JSON.stringify(key))
    // A served module is never the program's main module.
    .replace(/\bimport\.meta\.main\b/g, "false");
  if (!/\.[cm]?tsx?$/.test(new URL(key).pathname)) return source;
  return strip(source, { mode: "transform", sourceUrl: key });
}

/** The Node layer's transpiler, loaded on first need (~35-40 ms the first time). */
function loadStripTypes(): StripTypes {
  const process = (globalThis as unknown as {
    process: { getBuiltinModule(id: string): { stripTypeScriptTypes: StripTypes } };
  }).process;
  return process.getBuiltinModule("node:module").stripTypeScriptTypes;
}

/** A module's prepared JavaScript (from the on-disk cache, or transpiled now) and its stamp. */
function prepared(url: URL): { source: string; stamp: string } {
  const key = url.href;
  const path = decodeURIComponent(url.pathname);
  // The stamp before the read: a change in between makes the next start miss.
  const stamp = sourceStamp(path);
  let source = cachedModule(key, stamp);
  if (source !== undefined) counts.cached++;
  else {
    counts.transpiled++;
    const text = decoder.decode(readFileFfi(path));
    source = prepareSource(text, key, stripTypes ??= loadStripTypes());
    storeModule(key, stamp, source);
  }
  return { source, stamp };
}

/**
 * The bundle of the graph under `entries` as a `blob:` URL, from the
 * on-disk cache when no module of it changed; undefined when the graph
 * cannot be bundled (the reason is kept: {@link bundleRefusals}).
 */
function bundle(entries: readonly string[], exports: boolean): string | undefined {
  const key = `${exports ? "exports" : "run"}\n${entries.join("\n")}`;
  const known = bundles.get(key);
  if (known !== undefined) return known || undefined;
  const served = bundledScript(key, entries, exports, []);
  let url: string | undefined;
  if (served !== undefined) {
    const { script, file } = served;
    // A small loader module that runs the bundle from its cache file, or
    // the bundle itself as a blob: module (sys/module_bundle.ts says why
    // not data:) where it has no file.
    const name = `${entries[0]}#denovmm-bundle`;
    const js = (file && scriptLoaderModule(script, file.path, file.head, name)) ??
      scriptModule(script);
    url = moduleBlobUrl(js, exports ? entries[0] : undefined);
  }
  bundles.set(key, url ?? "");
  return url;
}

/**
 * The bundle script of the graph under `entries`, from the on-disk cache
 * when no module of it (nor of the bundler) changed; undefined when bundles
 * are off or the graph cannot be bundled (the reason is kept).
 *
 * @param roots modules this isolate already runs: their static graph is
 *   read for linking but provided, not bundled
 */
function bundledScript(
  name: string,
  entries: readonly string[],
  exports: boolean,
  roots: readonly string[],
): { script: BundleScript; file: BundleFile | undefined } | undefined {
  bundlesOff ??= libc.getenv(cstring("DENOVMM_NO_BUNDLE")) !== null;
  if (bundlesOff) return undefined;
  const key = `${BUNDLE_FORMAT} ${name}${
    roots.length > 0 ? `\nprovided by ${roots.join(" ")}` : ""
  }`;
  const hit = cachedBundle(key);
  if (hit !== undefined) {
    counts.bundlesCached++;
    if (hit.text.startsWith(REFUSED)) {
      refuse(hit.text.slice(REFUSED.length));
      return undefined;
    }
    const nl = hit.text.indexOf("\n");
    const meta = JSON.parse(hit.text.slice(0, nl)) as Omit<BundleScript, "body">;
    return { script: { ...meta, body: hit.text.slice(nl + 1) }, file: hit.file };
  }
  const shapes = new Map<string, ModuleShape>();
  // The bundler's own files count as sources: a change to them rebuilds every bundle.
  const modules: Array<[string, string]> = BUNDLER_FILES.map((u) => [
    u,
    sourceStamp(decodeURIComponent(new URL(u).pathname)),
  ]);
  const read = (u: string, dynamic: boolean) => {
    if (shapes.has(u)) return;
    let known = recentShapes.get(u);
    if (known === undefined) {
      const { source, stamp } = prepared(new URL(u));
      known = { shape: readModuleShape(u, source), stamp };
      rememberShape(u, known);
    }
    modules.push([u, known.stamp]);
    const s = known.shape;
    shapes.set(u, s);
    for (const r of s.requests) if (r.startsWith("file:")) read(r, dynamic);
    if (dynamic) { for (const r of s.dynamic) read(r, dynamic); }
  };
  let text: string;
  let script: BundleScript | undefined;
  try {
    // What the isolate runs already: static imports only (those ran).
    for (const r of roots) read(r, false);
    const provided = new Set(shapes.keys());
    for (const e of entries) read(e, true);
    script = bundleScript(shapes, entries, { exports, provided });
    const { body, ...meta } = script;
    text = `${JSON.stringify(meta)}\n${body}`;
    counts.bundlesBuilt++;
  } catch (e) {
    // A module not on disk is the caller's case (a compiled binary); any
    // other failure of the bundler only costs the bundle.
    if (!(e instanceof Error) || /ENOENT/.test(e.message)) throw e;
    const why = e instanceof BundleRefusal ? e.message : `bundler failed: ${e.stack}`;
    refuse(why);
    text = REFUSED + why;
  }
  const file = storeBundle(key, { modules, text });
  return script === undefined ? undefined : { script, file };
}

/**
 * Imports a local module in this isolate under `--allow-ffi` alone, as one
 * bundle of its graph run without a module load (sys/module_bundle.ts
 * `runBundleScript`): for the main thread's command, whose ~200 modules
 * Deno loads in ~55-75 ms on the 2-vCPU host against ~25 ms for the same
 * code as one script, and whose literal `import()` alone would make Deno
 * read its whole graph before main.ts starts (~25 ms more). The modules
 * `roots` import statically are already running here: the bundle shares
 * them (their namespaces, by a dynamic import of each, which loads
 * nothing) instead of running copies. With `DENOVMM_NO_BUNDLE` or for a
 * graph the bundler refuses, the graph is served as separate `blob:`
 * modules (as {@link workerUrl} serves one it cannot bundle); with read permission or in a compiled binary
 * (no sources on disk) it is a plain `import()`.
 *
 * @param url the module's file URL
 * @param roots the modules this isolate runs whose static imports it shares
 * @returns the module's namespace
 * @example
 * ```ts ignore
 * const { main } = await importBundled(new URL("./command.ts", import.meta.url), [Deno.mainModule]);
 * ```
 */
export async function importBundled(
  url: URL,
  roots: ReadonlyArray<URL | string>,
): Promise<Record<string, unknown>> {
  const rootUrls = roots.map((r) => new URL(r).href);
  if (url.protocol === "file:" && !readGranted(url)) {
    let script: BundleScript | undefined;
    try {
      script = bundledScript(`script\n${url.href}`, [url.href], true, rootUrls)?.script;
    } catch (e) {
      if (!(e instanceof Error && /ENOENT/.test(e.message))) throw e;
    }
    if (script !== undefined) {
      const provided = new Map<string, Record<string, unknown>>();
      // Each is running: import() returns its namespace without a load.
      for (const p of script.provided) provided.set(p, await import(p));
      return runBundleScript(script, provided, `${url.href}#denovmm-bundle`);
    }
    // Bundles off or refused: its graph as separate blob: modules (as a
    // Worker gets it; not through workerUrl, which would try to bundle it
    // again), which need no read permission either; they run their own
    // copies of the modules this isolate runs.
    try {
      return await import(serve(url, []));
    } catch (e) {
      if (!(e instanceof Error && /ENOENT/.test(e.message))) throw e;
    }
  }
  return await import(url.href);
}

/**
 * Modules read for bundles in the last moments: the bundles of one start
 * (a vCPU thread's entry, then its backend and devices alone) share most
 * modules, read and tokenized once. Forgotten a second after the last one
 * (their tokens are megabytes).
 */
const recentShapes = new Map<string, { shape: ModuleShape; stamp: string }>();
let forget: ReturnType<typeof setTimeout> | undefined;

function rememberShape(url: string, known: { shape: ModuleShape; stamp: string }): void {
  recentShapes.set(url, known);
  if (forget !== undefined) clearTimeout(forget);
  const timer = setTimeout(() => recentShapes.clear(), 1000);
  Deno.unrefTimer(timer);
  forget = timer;
}

function refuse(reason: string): void {
  counts.refused++;
  refusals.push(reason);
}

/**
 * The module as it is served: comments dropped, `import.meta.url` pinned to
 * its file URL, types stripped, local imports pointing at served modules.
 */
function serve(url: URL, stack: string[]): string {
  const key = url.href;
  const hit = cache.get(key);
  if (hit) return hit;
  if (stack.includes(key)) {
    throw new Error(`Import cycle through ${key}: cannot serve it as blob modules`);
  }
  stack.push(key);
  const source = prepared(url).source;
  const rewritten = source.replace(IMPORT_RE, (all, head: string, q: string, spec: string) => {
    if (!isLocal(spec)) return all;
    return `${head}${q}${serve(new URL(spec, url), stack)}${q}`;
  });
  stack.pop();
  const served = URL.createObjectURL(new Blob([rewritten], { type: "text/javascript" }));
  cache.set(key, served);
  return served;
}

/**
 * A URL for `new Worker()` or `import()` of a local module that works with
 * or without read permission.
 *
 * @param url the module's file URL (e.g. `new URL("./worker.ts", import.meta.url)`)
 * @returns url itself, or an equivalent `blob:` URL
 * @example
 * ```ts ignore
 * import { workerUrl } from "./worker_url.ts";
 * new Worker(workerUrl(new URL("./my_worker.ts", import.meta.url)), { type: "module" });
 * ```
 */
export function workerUrl(url: URL | string): string {
  const u = new URL(url);
  if (u.protocol !== "file:" || readGranted(u)) return u.href;
  try {
    return bundle([u.href], true) ?? serve(u, []);
  } catch (e) {
    // Not on disk (a compiled binary embeds its modules): load it directly.
    if (e instanceof Error && /ENOENT/.test(e.message)) return u.href;
    throw e;
  }
}

/**
 * A URL for `new Worker()` whose module runs each of `entries` in order (a
 * Worker that imports its later modules in one go), working with or without
 * read permission: one bundle of their whole graph, or, where it cannot be
 * bundled, a small module importing each as {@link workerUrl} serves it.
 *
 * @param entries the modules' file URLs
 * @returns a `blob:` URL, or a `data:` URL importing the entries
 * @example
 * ```ts ignore
 * import { workerBundleUrl } from "./worker_url.ts";
 * const url = workerBundleUrl([new URL("./worker.ts", import.meta.url), backendUrl]);
 * new Worker(url, { type: "module", name: "vcpu-0" });
 * ```
 */
export function workerBundleUrl(entries: ReadonlyArray<URL | string>): string {
  const urls = entries.map((e) => new URL(e));
  const local = urls.every((u) => u.protocol === "file:" && !readGranted(u));
  if (local) {
    try {
      const b = bundle(urls.map((u) => u.href), false);
      if (b !== undefined) return b;
    } catch (e) {
      if (!(e instanceof Error && /ENOENT/.test(e.message))) throw e;
    }
  }
  // A short data: URL: stable, so Deno's code cache keeps one entry for it.
  return moduleDataUrl(urls.map((u) => `import ${JSON.stringify(workerUrl(u))};\n`).join(""));
}

/** What {@link servedModuleCounts} reports. */
export interface ServedModuleCounts {
  /** Modules whose prepared JavaScript came from the on-disk cache. */
  cached: number;
  /** Modules transpiled (the Node layer loaded on this thread). */
  transpiled: number;
  /** Bundles built from their modules. */
  bundlesBuilt: number;
  /** Bundles (or refusals) read back from the on-disk cache. */
  bundlesCached: number;
  /** Graphs served as separate `blob:` modules because they could not be bundled. */
  refused: number;
}

/**
 * Where the modules served so far came from: the on-disk cache, or the
 * transpiler (which loads the Node layer on this thread); bundles built,
 * read back, refused.
 *
 * @returns counts
 * @example
 * ```ts
 * import { servedModuleCounts } from "./worker_url.ts";
 * console.log(servedModuleCounts().transpiled); // 0 before anything is served
 * ```
 */
export function servedModuleCounts(): ServedModuleCounts {
  return { ...counts };
}

/**
 * Why graphs were served as separate modules instead of one bundle, in
 * this process (one line each).
 *
 * @returns the reasons
 * @example
 * ```ts
 * import { bundleRefusals } from "./worker_url.ts";
 * console.log(bundleRefusals()); // [] when every graph was bundled
 * ```
 */
export function bundleRefusals(): string[] {
  return [...refusals];
}
