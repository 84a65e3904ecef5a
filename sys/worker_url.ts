/**
 * Module URLs that a Worker can load under `deno run --allow-ffi` alone.
 *
 * Deno checks read permission when a Worker loads local modules (a Worker's
 * graph counts as a dynamic import), but the VMM's only permission is FFI -
 * which can read files anyway, through libc. So when read access is not
 * granted, the module graph is read with libc and re-served as `blob:`
 * JavaScript modules that import each other: the same code, loaded with no
 * extra permission. With read access granted (or in a compiled binary, where
 * modules are embedded) the file URL is used as is.
 *
 * Three properties of the served modules:
 *
 * - **Nothing written to disk.** Each TypeScript module is transpiled here,
 *   in memory, by Deno's own transpiler (`stripTypeScriptTypes` from
 *   `node:module`, the swc transform Deno's loader uses), and served as
 *   JavaScript, which Deno loads without an emit step. (Served as
 *   TypeScript, each start had Deno write ~36 transpiled files under
 *   `DENO_DIR/gen/blob/`, named after fresh blob UUIDs, never reused;
 *   content-addressed `data:` URLs would be reusable, but every module's URL
 *   then embeds its whole import graph: megabytes per Worker, seconds to load.)
 * - **Built once per process.** A module's blob URL is cached, so every
 *   Worker of the process (vCPUs, aio, iothreads) loads the same blobs.
 * - **`import.meta.url` is the original file URL.** Every `import.meta.url`
 *   in a served module is replaced by the module's own `file:` URL (a string
 *   literal), so `new URL("./_worker.ts", import.meta.url)` inside a served
 *   module resolves to a file again - and {@link workerUrl} serves that one
 *   too. (Against a `blob:` base it threw "Invalid URL": an I/O thread
 *   starting its aio pool did.)
 *
 * The import rewriting is textual: relative and `file:` specifiers of
 * static imports, re-exports and `import("...")` with a literal; comments
 * are dropped first (doc examples contain imports). Import cycles are
 * refused (the project has none).
 *
 * **Start-up cost.** The transpiler lives in Deno's Node compatibility layer,
 * whose first use costs ~35-40 ms of the caller's thread (then ~1 ms per
 * module). So this module does not import it: the command calls
 * {@link prefetchWorkerModules} first thing, which reads and transpiles the
 * Workers' module graphs in a short-lived Worker of its own, in parallel
 * with the main thread loading the command's graph; {@link workerUrl} then
 * only rewrites imports and makes blobs. A module the prefetch did not
 * cover (or every module, without a prefetch) is transpiled on the calling
 * thread, the Node layer loaded on first need: the same text either way.
 *
 * @module
 */
import { readFileFfi } from "./fd.ts";

/** `stripTypeScriptTypes` of `node:module`. */
type StripTypes = (code: string, options: { mode: "transform"; sourceUrl: string }) => string;

const IMPORT_RE = importPattern();
const cache = new Map<string, string>();
/** Module file URL -> prepared JavaScript, from the prefetch Worker. */
const prepared = new Map<string, string>();
const decoder = new TextDecoder();
let stripTypes: StripTypes | undefined;
const counts = { prefetched: 0, inPlace: 0 };

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

// The next two functions also run in the prefetch Worker, as their source
// text (Function.prototype.toString): they use nothing from outside.

/** Static imports, re-exports and literal `import()`: group 3 is the specifier. */
function importPattern(): RegExp {
  return /((?:^|[\s;}])(?:import|export)\b[^"';]*?\bfrom\s*|(?:^|[\s;])import\s*\(?\s*)(["'])([^"'\n]+)\2/g;
}

/** Comments dropped, `import.meta.url` pinned to `key`, types stripped. */
function prepareSource(text: string, key: string, strip: StripTypes): string {
  // Block comments and whole-line comments go (doc examples import too).
  const source = text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "")
    .replace(/\bimport\.meta\.url\b/g, JSON.stringify(key));
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
  let source = prepared.get(key);
  if (source !== undefined) counts.prefetched++;
  else {
    counts.inPlace++;
    const text = decoder.decode(readFileFfi(decodeURIComponent(url.pathname)));
    source = prepareSource(text, key, stripTypes ??= loadStripTypes());
  }
  const rewritten = source.replace(IMPORT_RE, (all, head: string, q: string, spec: string) => {
    if (!isLocal(spec)) return all;
    return `${head}${q}${serve(new URL(spec, url), stack)}${q}`;
  });
  stack.pop();
  const served = URL.createObjectURL(new Blob([rewritten], { type: "text/javascript" }));
  cache.set(key, served);
  return served;
}

/** The prefetch Worker's whole program (JavaScript: it loads with no permission). */
function prefetchProgram(): string {
  return `const importPattern = ${importPattern};
const prepareSource = ${prepareSource};
const { stripTypeScriptTypes } = await import("node:module");
const lib = Deno.dlopen("libc.so.6", {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
});
const decoder = new TextDecoder();
function readText(path) {
  const fd = lib.symbols.open(new TextEncoder().encode(path + "\\0"), 0x80000);
  if (fd < 0) return undefined;
  const parts = [];
  try {
    for (;;) {
      const b = new Uint8Array(65536);
      const n = Number(lib.symbols.read(fd, b, 65536n));
      if (n < 0) return undefined;
      if (n === 0) break;
      parts.push(b.subarray(0, n));
    }
  } finally {
    lib.symbols.close(fd);
  }
  const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) { all.set(p, off); off += p.length; }
  return decoder.decode(all);
}
self.onmessage = (e) => {
  const out = [];
  const seen = new Set();
  const walk = (href) => {
    if (seen.has(href)) return;
    seen.add(href);
    const url = new URL(href);
    const text = readText(decodeURIComponent(url.pathname));
    if (text === undefined) return;
    const source = prepareSource(text, href, stripTypeScriptTypes);
    out.push([href, source]);
    for (const m of source.matchAll(importPattern())) {
      const spec = m[3];
      if (spec.startsWith("./") || spec.startsWith("../") || spec.startsWith("file:")) {
        walk(new URL(spec, url).href);
      }
    }
  };
  try {
    for (const href of e.data) walk(href);
  } finally {
    lib.close();
    self.postMessage(out);
  }
};
`;
}

/**
 * Starts reading and transpiling the module graphs of the Workers the
 * process will start, in a Worker of its own (~35-40 ms of the Node layer's
 * start plus ~1 ms per module, off the calling thread). Call it as early as
 * possible and await it before the first {@link workerUrl}; without it, or
 * for modules it did not reach, {@link workerUrl} transpiles in place.
 * Does nothing where Workers load their files directly (read permission).
 *
 * @param entries the Worker entry modules (and modules Workers import by URL)
 * @returns resolves once the prepared modules are in place (never rejects:
 *   where the prefetch fails, {@link workerUrl} does the work itself)
 * @example
 * ```ts ignore
 * import { prefetchWorkerModules, workerUrl } from "./worker_url.ts";
 * const ready = prefetchWorkerModules([new URL("./my_worker.ts", import.meta.url)]);
 * // ... load the rest of the program ...
 * await ready;
 * new Worker(workerUrl(new URL("./my_worker.ts", import.meta.url)), { type: "module" });
 * ```
 */
export function prefetchWorkerModules(entries: (URL | string)[]): Promise<void> {
  const hrefs = entries.map((e) => new URL(e).href).filter((h) => {
    const u = new URL(h);
    return u.protocol === "file:" && !readGranted(u) && !cache.has(h);
  });
  if (hrefs.length === 0) return Promise.resolve();
  const program = URL.createObjectURL(new Blob([prefetchProgram()], { type: "text/javascript" }));
  const w = new Worker(program, { type: "module", name: "module-prefetch" });
  URL.revokeObjectURL(program);
  return new Promise((resolve) => {
    const done = () => {
      w.terminate();
      resolve();
    };
    w.onmessage = (e: MessageEvent<[string, string][]>) => {
      for (const [href, source] of e.data) if (!cache.has(href)) prepared.set(href, source);
      done();
    };
    w.onerror = (e) => {
      e.preventDefault();
      done();
    };
    w.postMessage(hrefs);
  });
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
    return serve(u, []);
  } catch (e) {
    // Not on disk (a compiled binary embeds its modules): load it directly.
    if (e instanceof Error && /ENOENT/.test(e.message)) return u.href;
    throw e;
  }
}

/**
 * How the modules served so far were transpiled: by the prefetch Worker, or
 * in place on the calling thread (which loads the Node layer there).
 *
 * @returns counts of served modules by origin
 * @example
 * ```ts
 * import { servedModuleCounts } from "./worker_url.ts";
 * console.log(servedModuleCounts().inPlace); // 0 before anything is served
 * ```
 */
export function servedModuleCounts(): { prefetched: number; inPlace: number } {
  return { ...counts };
}
