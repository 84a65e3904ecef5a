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
 * @module
 */
import { stripTypeScriptTypes } from "node:module";
import { readFileFfi } from "./fd.ts";

const IMPORT_RE =
  /((?:^|[\s;}])(?:import|export)\b[^"';]*?\bfrom\s*|(?:^|[\s;])import\s*\(?\s*)(["'])([^"'\n]+)\2/g;
const IMPORT_META_URL_RE = /\bimport\.meta\.url\b/g;
const cache = new Map<string, string>();
const decoder = new TextDecoder();

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
  // Block comments and whole-line comments go (doc examples import too).
  let source = decoder.decode(readFileFfi(decodeURIComponent(url.pathname)))
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "")
    .replace(IMPORT_META_URL_RE, JSON.stringify(key));
  if (/\.[cm]?tsx?$/.test(url.pathname)) {
    source = stripTypeScriptTypes(source, { mode: "transform", sourceUrl: key });
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
