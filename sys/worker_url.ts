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
 * whose first use costs ~35-40 ms (then ~1 ms per module). So this module
 * does not import it: prepared modules are kept on disk by
 * sys/module_cache.ts, and the Node layer is loaded (synchronously, through
 * `process.getBuiltinModule`) only on a cache miss: the first start after a
 * module changed.
 *
 * @module
 */
import { readFileFfi } from "./fd.ts";
import { cachedModule, sourceStamp, storeModule } from "./module_cache.ts";

/** `stripTypeScriptTypes` of `node:module`. */
type StripTypes = (code: string, options: { mode: "transform"; sourceUrl: string }) => string;

/** Static imports, re-exports and literal `import()`: group 3 is the specifier. */
const IMPORT_RE =
  /((?:^|[\s;}])(?:import|export)\b[^"';]*?\bfrom\s*|(?:^|[\s;])import\s*\(?\s*)(["'])([^"'\n]+)\2/g;
const cache = new Map<string, string>();
const decoder = new TextDecoder();
let stripTypes: StripTypes | undefined;
const counts = { cached: 0, transpiled: 0 };

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
    return serve(u, []);
  } catch (e) {
    // Not on disk (a compiled binary embeds its modules): load it directly.
    if (e instanceof Error && /ENOENT/.test(e.message)) return u.href;
    throw e;
  }
}

/**
 * Where the modules served so far came from: the on-disk cache, or the
 * transpiler (which loads the Node layer on this thread).
 *
 * @returns counts of served modules by origin
 * @example
 * ```ts
 * import { servedModuleCounts } from "./worker_url.ts";
 * console.log(servedModuleCounts().transpiled); // 0 before anything is served
 * ```
 */
export function servedModuleCounts(): { cached: number; transpiled: number } {
  return { ...counts };
}
