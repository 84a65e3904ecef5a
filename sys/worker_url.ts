/**
 * Module URLs that a Worker can load under `deno run --allow-ffi` alone.
 *
 * Deno checks read permission when a Worker loads local modules, but the
 * VMM's only permission is FFI (which can read files anyway, through libc).
 * So when read access is not granted, the module graph is read with libc
 * and re-served as blob: modules that import each other: the same code,
 * loaded with no extra permission. With read access granted (or in a
 * compiled binary, where modules are embedded) the file URL is used as is.
 *
 * @module
 */
import { readFileFfi } from "./fd.ts";

const IMPORT_RE =
  /((?:^|[\s;}])(?:import|export)\b[^"';]*?\bfrom\s*|(?:^|[\s;])import\s*\(?\s*)(["'])([^"'\n]+)\2/g;
const cache = new Map<string, string>();
const decoder = new TextDecoder();

function readGranted(url: URL): boolean {
  try {
    return Deno.permissions.querySync({ name: "read", path: url }).state === "granted";
  } catch {
    return false;
  }
}

function blobFor(url: URL, stack: string[]): string {
  const key = url.href;
  const hit = cache.get(key);
  if (hit) return hit;
  if (stack.includes(key)) {
    throw new Error(`Import cycle through ${key}: cannot serve it as blob modules`);
  }
  stack.push(key);
  // Block comments and whole-line comments go (doc examples import too).
  const source = decoder.decode(readFileFfi(decodeURIComponent(url.pathname)))
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  const rewritten = source.replace(IMPORT_RE, (all, head: string, q: string, spec: string) => {
    if (!spec.startsWith("./") && !spec.startsWith("../") && !spec.startsWith("file:")) return all;
    return `${head}${q}${blobFor(new URL(spec, url), stack)}${q}`;
  });
  stack.pop();
  const type = url.pathname.endsWith(".ts") ? "application/typescript" : "text/javascript";
  const blob = URL.createObjectURL(new Blob([rewritten], { type }));
  cache.set(key, blob);
  return blob;
}

/**
 * A URL for `new Worker()` or `import()` of a local module that works with
 * or without read permission.
 *
 * @param url the module's file URL (e.g. `new URL("./worker.ts", import.meta.url)`)
 * @returns url itself, or an equivalent blob: URL
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
    return blobFor(u, []);
  } catch (e) {
    // Not on disk (a compiled binary embeds its modules): load it directly.
    if (e instanceof Error && /ENOENT/.test(e.message)) return u.href;
    throw e;
  }
}
