/**
 * A cache of transpiled modules on disk, for sys/worker_url.ts: what the
 * Workers load under `--allow-ffi` alone is TypeScript stripped to
 * JavaScript, and the transpiler (in Deno's Node layer) costs ~35-40 ms to
 * load plus ~1 ms per module, on every start. With this cache only the first
 * start after a change pays; the next ones read the JavaScript back. It also
 * keeps the bundles made of those modules (sys/module_bundle.ts), one file
 * per set of entry modules (`bundle-HASH.js`), each with the list of the
 * modules it was built from and their stamps: a start after no change reads
 * that one file and fstats the modules ({@link cachedBundle}).
 *
 * One file per module, `$XDG_CACHE_HOME/denovmm/js/` (else
 * `$HOME/.cache/denovmm/js/`), named after a hash of the module's URL and
 * overwritten when it changes, so the cache holds at most one entry per
 * module. An entry is used only when its first line names the same Deno
 * version, preparation version and stamp of the module's file (device,
 * inode, size, modification and change times: {@link sourceStamp});
 * otherwise the caller transpiles and replaces it. A stamp, not the
 * source's hash: a hit then reads only the entry, not the source too (and
 * hashes nothing), which made serving the vCPU thread's ~50 modules cost
 * ~2.3 s of the main thread in the nested KVM host, where sources sit on a
 * 9p share under the emulator. Any write to a file moves its change time,
 * which no tool can set back. Entries are written to a
 * temporary name and renamed, so concurrent VMM starts never read a partial
 * entry. Entries are code the VMM runs: a cache directory that a group or
 * other users may write is not used.
 *
 * **Bounded.** Entries are per module URL, so every checkout, worktree or
 * copy of the project adds its own (~2 MiB each). Past
 * {@link MODULE_CACHE_BYTES}, storing a bundle removes the entries least
 * recently used (sys/cache_eviction.ts); a hit marks its entry used, at
 * most once an hour (one `futimens` on the open entry, none on most
 * starts). All through libc (the VMM has no read/write/env permission); any
 * failure (no HOME, a read-only home) only means no cache.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { errno, ErrnoError } from "./errno.ts";
import { evictLeastRecentlyUsed, markUsed } from "./cache_eviction.ts";
import {
  closeFd,
  cstring,
  type FileStat,
  fstat,
  O_CLOEXEC,
  O_CREAT,
  O_EXCL,
  O_RDONLY,
  O_WRONLY,
  openFile,
  readFileFfi,
  S_IFDIR,
  S_IFMT,
  statAt,
  transferAllOnPool,
  writeAll,
} from "./fd.ts";

/** Bump when the preparation of served modules changes (sys/worker_url.ts). */
const FORMAT = "denovmm-js 3";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
let dir: string | null | undefined;

/**
 * A 53-bit string hash (cyrb53), not cryptographic: an entry's file name from its URL.
 *
 * @param text the key
 * @returns the hash in base 36
 */
export function hash53(text: string): string {
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(36);
}

function env(name: string): string | undefined {
  const p = libc.getenv(cstring(name));
  if (p === null) return undefined;
  const v = new Deno.UnsafePointerView(p).getCString();
  return v === "" ? undefined : v;
}

/** mkdir that accepts an existing directory; false on any other failure. */
function mkdirOk(path: string): boolean {
  return libc.mkdir(cstring(path), 0o700) === 0 || fileExists(path);
}

function fileExists(path: string): boolean {
  try {
    closeFd(openFile(path, O_RDONLY | O_CLOEXEC));
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `path` is a directory no group or other user may write (entries
 * are code the VMM runs): created 0700 here; one made otherwise is not used.
 */
function private_(path: string): boolean {
  try {
    const fd = openFile(path, O_RDONLY | O_CLOEXEC);
    try {
      const { mode } = fstat(fd);
      return (mode & S_IFMT) === S_IFDIR && (mode & 0o022) === 0;
    } finally {
      closeFd(fd);
    }
  } catch {
    return false;
  }
}

/** The cache directory, created on first use; null where there is none. */
function cacheDir(): string | null {
  if (dir === undefined) dir = privateCacheDir("js");
  return dir;
}

/**
 * A directory of the VMM's cache (`$XDG_CACHE_HOME/denovmm/NAME`, else
 * `$HOME/.cache/denovmm/NAME`), created 0700 on first use. Its entries are
 * things the VMM runs (modules, kernels), so one that a group or other users
 * may write is not used.
 *
 * @param name the subdirectory
 * @returns its path, or null where there is none (no HOME, read-only, shared)
 * @example
 * ```ts ignore
 * const kernels = privateCacheDir("kernels");
 * ```
 */
export function privateCacheDir(name: string): string | null {
  const xdg = env("XDG_CACHE_HOME");
  const home = env("HOME");
  const base = xdg ?? (home ? `${home}/.cache` : undefined);
  if (!base?.startsWith("/")) return null;
  const sub = `${base}/denovmm/${name}`;
  return mkdirsOk(base) && mkdirOk(`${base}/denovmm`) && mkdirOk(sub) && private_(sub) ? sub : null;
}

/**
 * The base directory and whichever of its parents are missing, 0700 (the
 * XDG spec: a missing destination directory is created; a `~/.cache` or an
 * `XDG_CACHE_HOME` not made yet would otherwise leave the VMM uncached).
 */
function mkdirsOk(path: string): boolean {
  if (mkdirOk(path)) return true;
  const parent = path.slice(0, path.lastIndexOf("/"));
  return parent.length > 0 && mkdirsOk(parent) && mkdirOk(path);
}

function entryPath(key: string): string | null {
  const d = cacheDir();
  return d === null ? null : `${d}/${hash53(key)}.js`;
}

function header(key: string, stamp: string): string {
  return `// ${FORMAT} deno ${Deno.version.deno} ${stamp} ${key}\n`;
}

/**
 * What the module cache may hold: about 15 checkouts of the project. Past
 * it, storing a bundle removes the entries least recently used.
 */
export const MODULE_CACHE_BYTES = 32 << 20;

/** An entry read is marked used again once its mark is older than this. */
const MARK_USED_AFTER_MS = 3600_000;

/** Marks an entry a start reads as used, when its mark is an hour old. */
function markWhenStale(fd: number, st: FileStat): void {
  if (st.mtimeSec * 1000 < Date.now() - MARK_USED_AFTER_MS) markUsed(fd);
}

function readEntry(path: string): string | undefined {
  try {
    return decoder.decode(readFileFfi(path, 2 ** 32, { opened: markWhenStale }));
  } catch {
    return undefined;
  }
}

function writeEntry(path: string, text: string): boolean {
  return writeCacheEntry(path, [encoder.encode(text)]);
}

/**
 * Writes a cache entry (`parts`, in order) through a temporary name and a
 * rename, so that readers never see part of one; on any failure there is no
 * entry and no temporary file.
 *
 * @param path the entry, in a {@link privateCacheDir}
 * @param parts its bytes
 * @returns whether the entry was written
 */
export function writeCacheEntry(path: string, parts: readonly Uint8Array[]): boolean {
  const tmp = temporaryName(path);
  try {
    const fd = openFile(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600);
    try {
      for (const part of parts) writeAll(fd, part as Uint8Array<ArrayBuffer>);
    } finally {
      closeFd(fd);
    }
    if (libc.rename(cstring(tmp), cstring(path)) === 0) return true;
    libc.unlink(cstring(tmp));
  } catch {
    libc.unlink(cstring(tmp));
  }
  return false;
}

function temporaryName(path: string): string {
  return `${path}.${Deno.pid}.${Math.random().toString(36).slice(2)}.tmp`;
}

const TEMPORARY = /\.(\d+)\.[a-z0-9]+\.tmp$/;

/**
 * The pid of the process that wrote (or writes) a temporary entry file, by
 * its name as {@link writeCacheEntry} and {@link writeCacheEntryOnPool} make it.
 *
 * @param name a file name in a cache directory
 * @returns its writer's pid, or undefined when it is no temporary file
 */
export function temporaryWriterPid(name: string): number | undefined {
  const pid = Number(TEMPORARY.exec(name)?.[1]);
  return pid > 0 ? pid : undefined;
}

/** Parts this long are written on Deno's pool; shorter ones at once. */
const POOL_WRITE_MIN = 1 << 20;

/**
 * {@link writeCacheEntry} with the long parts written on Deno's blocking
 * pool (a kernel's entry is ~66 MiB, 0.1-0.4 s of `write` natively): the
 * calling thread's event loop turns meanwhile. Each part must stay
 * untouched until it settles.
 *
 * @param path the entry, in a {@link privateCacheDir}
 * @param parts its bytes
 * @returns whether the entry was written; never rejects
 */
export async function writeCacheEntryOnPool(
  path: string,
  parts: readonly Uint8Array[],
): Promise<boolean> {
  const tmp = temporaryName(path);
  let fd = -1;
  try {
    fd = openFile(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600);
    let offset = 0;
    for (const part of parts) {
      if (!await pwriteAll(fd, part, offset)) throw new Error("write");
      offset += part.length;
    }
    closeFd(fd);
    fd = -1;
    if (libc.rename(cstring(tmp), cstring(path)) === 0) return true;
  } catch {
    // no entry
  }
  if (fd >= 0) closeFd(fd);
  libc.unlink(cstring(tmp));
  return false;
}

/** pwrite of all of `part` at `offset`: on the pool when it is long. */
function pwriteAll(fd: number, part: Uint8Array, offset: number): Promise<boolean> {
  if (part.length >= POOL_WRITE_MIN) {
    // Any failure drops the entry.
    const addr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(part)));
    return transferAllOnPool("pwrite", fd, addr, part.length, offset);
  }
  // A short part may be a typed array V8 keeps on its heap: written here, at once.
  let done = 0;
  while (done < part.length) {
    const n = Number(
      libc.pwrite(fd, part.subarray(done), BigInt(part.length - done), BigInt(offset + done)),
    );
    if (n < 0 && errno() === 4) continue;
    if (n <= 0) return Promise.resolve(false);
    done += n;
  }
  return Promise.resolve(true);
}

/**
 * What identifies one version of a file without reading it: device, inode,
 * size, modification and change times (ns), from fstat.
 *
 * @param path the module's file
 * @returns the stamp
 * @throws ErrnoError when the file cannot be opened (ENOENT: not on disk)
 * @example
 * ```ts ignore
 * import { sourceStamp } from "./module_cache.ts";
 * console.log(sourceStamp("/srv/denovmm/vcpu/worker.ts")); // "2049:1234:5678:..."
 * ```
 */
export function sourceStamp(path: string): string {
  // A stat, not open + fstat: one call per module of a bundle's check (a
  // kernel named by the user is stamped before it is read, and stat never
  // waits on a FIFO as an open to read would).
  const st = statAt(path);
  if (st === undefined) throw new ErrnoError(`stat ${path}`, errno());
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeSec}.${st.mtimeNsec}:${st.ctimeSec}.${st.ctimeNsec}`;
}

/**
 * The cached JavaScript for a module, if its entry matches `stamp`.
 *
 * @param key the module's file URL
 * @param stamp the module file's {@link sourceStamp} now
 * @returns the prepared JavaScript, or undefined on a miss
 * @example
 * ```ts ignore
 * const js = cachedModule(url.href, sourceStamp(path)) ?? transpile(text);
 * ```
 */
export function cachedModule(key: string, stamp: string): string | undefined {
  const path = entryPath(key);
  const text = path === null ? undefined : readEntry(path);
  const h = header(key, stamp);
  return text?.startsWith(h) ? text.slice(h.length) : undefined;
}

/**
 * Stores a module's prepared JavaScript (replacing its old entry). Failures
 * are ignored: the next start transpiles again.
 *
 * @param key the module's file URL
 * @param stamp the {@link sourceStamp} taken before its source was read
 * @param prepared the JavaScript to serve
 * @example
 * ```ts ignore
 * storeModule(url.href, stamp, js);
 * ```
 */
export function storeModule(key: string, stamp: string, prepared: string): void {
  const path = entryPath(key);
  if (path !== null) writeEntry(path, header(key, stamp) + prepared);
}

/** What a bundle entry holds: the modules it was built from, and its text. */
export interface BundleEntry {
  /** Each module of the graph with the {@link sourceStamp} it was read at. */
  readonly modules: ReadonlyArray<readonly [string, string]>;
  /** The bundle (or whatever the caller stored: a refusal's reason). */
  readonly text: string;
}

/** Where a bundle entry is on disk: the file holds `head`, a newline, then the text. */
export interface BundleFile {
  /** The entry's path. */
  readonly path: string;
  /** Its first line (the stamps it was checked against). */
  readonly head: string;
}

function bundlePath(key: string): string | null {
  const d = cacheDir();
  return d === null ? null : `${d}/bundle-${hash53(key)}.js`;
}

/**
 * The cached bundle for a set of entry modules, if every module it was
 * built from still has the stamp it had (fstat each: no source is read).
 *
 * @param key what identifies the bundle (its entry URLs)
 * @returns the entry and its file, or undefined on a miss or a stale entry
 * @example
 * ```ts ignore
 * const hit = cachedBundle(entries.join("\n"));
 * ```
 */
export function cachedBundle(key: string): (BundleEntry & { file: BundleFile }) | undefined {
  const path = bundlePath(key);
  const text = path === null ? undefined : readEntry(path);
  const nl = text?.indexOf("\n") ?? -1;
  if (text === undefined || nl < 0) return undefined;
  let head: { format?: string; deno?: string; key?: string; modules?: [string, string][] };
  try {
    head = JSON.parse(text.slice(0, nl));
  } catch {
    return undefined;
  }
  if (head.format !== FORMAT || head.deno !== Deno.version.deno || head.key !== key) {
    return undefined;
  }
  const modules = head.modules ?? [];
  forgetOldStamps();
  let stamped = false;
  for (const [url, stamp] of modules) {
    let now = recentStamps.get(url);
    if (now === undefined) {
      try {
        now = sourceStamp(decodeURIComponent(new URL(url).pathname));
      } catch {
        return undefined;
      }
      recentStamps.set(url, now);
      stamped = true;
    }
    if (now !== stamp) return undefined;
  }
  if (stamped) stampedAt = performance.now();
  return { modules, text: text.slice(nl + 1), file: { path: path!, head: text.slice(0, nl) } };
}

/**
 * Stamps taken in the last moments: the bundles of one start (a vCPU
 * thread's entry, then its backend and devices alone) share most modules,
 * each fstat-ed once (in the nested KVM host, on a 9p share under the
 * emulator, ~30 fstats cost ~100 ms). Used for a second after the last one
 * was taken; no timer (a process's first `setTimeout` loads Deno's Node
 * timers, ~10 ms on the path to the first vCPU Worker).
 */
const recentStamps = new Map<string, string>();
let stampedAt = 0;

/**
 * Clears the stamps when the last was taken over a second ago. Once per
 * bundle, not per module: `performance.now()` costs 1-3 µs early in a
 * process (an op call), and a start checks ~190 modules for each of three
 * bundles.
 */
function forgetOldStamps(): void {
  if (performance.now() - stampedAt > 1000) recentStamps.clear();
}

/**
 * Stores a bundle with the stamps of the modules it was built from
 * (replacing the entry for the same key). Failures are ignored.
 *
 * @param key what identifies the bundle (its entry URLs)
 * @param entry the modules' stamps (taken before they were read) and the text
 * @returns where it was written, or undefined where it was not
 * @example
 * ```ts ignore
 * storeBundle(key, { modules: [[url, stamp]], text: js });
 * ```
 */
export function storeBundle(key: string, entry: BundleEntry): BundleFile | undefined {
  const path = bundlePath(key);
  if (path === null) return undefined;
  const head = JSON.stringify({
    format: FORMAT,
    deno: Deno.version.deno,
    key,
    modules: entry.modules,
  });
  if (!writeEntry(path, `${head}\n${entry.text}`)) return undefined;
  // A store is a miss (a module changed, or a new checkout): the moment to
  // keep the directory within its bound, not on every start.
  evictLeastRecentlyUsed(
    cacheDir()!,
    ".js",
    MODULE_CACHE_BYTES,
    path.slice(path.lastIndexOf("/") + 1),
  );
  return { path, head };
}
