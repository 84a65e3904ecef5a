/**
 * A bound on a cache directory of the VMM: the entries least recently used
 * go first once the directory holds more than its limit, as ccache and
 * Cloud Hypervisor's and Firecracker's image tooling leave to the user, but
 * here without a command to run: a kernel cache entry is ~66 MiB (one per
 * bzImage path), so a user booting a directory of test kernels, or a
 * kernel developer's tree per build directory, would otherwise fill the
 * disk with entries of kernels long gone.
 *
 * "Used" is the entry's modification time: a hit sets it to now
 * ({@link markUsed}, one `futimens`), a fill writes it. Access times are not
 * used (relatime and noatime mounts keep them stale). Entries being read
 * by another VMM stay readable after their unlink (it holds its fd);
 * temporary files of writers are not entries and are never counted here.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { AT_SYMLINK_NOFOLLOW, cstring, S_IFMT, S_IFREG, statAt } from "./fd.ts";
import { listDirectory } from "./procfs.ts";

/** An entry of a cache directory: its name, size and last use (ms since the epoch). */
export interface CacheEntryInfo {
  /** File name in the directory. */
  readonly name: string;
  /** Bytes. */
  readonly size: number;
  /** Modification time in ms since the epoch: when it was written or last used. */
  readonly usedMs: number;
}

/**
 * Which entries to remove so that the rest fit in `maxBytes`: the least
 * recently used first, until they fit; `keep` (the entry just written) is
 * never removed, even alone over the limit.
 *
 * @param entries the directory's entries
 * @param maxBytes the limit
 * @param keep a name never to remove
 * @returns the names to remove, least recently used first
 * @example
 * ```ts
 * import { entriesToEvict } from "./cache_eviction.ts";
 * const e = [
 *   { name: "a", size: 60, usedMs: 1 },
 *   { name: "b", size: 60, usedMs: 2 },
 * ];
 * console.log(entriesToEvict(e, 100)); // ["a"]
 * ```
 */
export function entriesToEvict(
  entries: readonly CacheEntryInfo[],
  maxBytes: number,
  keep?: string,
): string[] {
  // Oldest first; equal times by name, so the choice does not depend on listing order.
  const byAge = [...entries].sort((a, b) => a.usedMs - b.usedMs || (a.name < b.name ? -1 : 1));
  let total = byAge.reduce((n, e) => n + e.size, 0);
  const evict: string[] = [];
  for (const e of byAge) {
    if (total <= maxBytes) break;
    if (e.name === keep) continue;
    evict.push(e.name);
    total -= e.size;
  }
  return evict;
}

/** A regular file's size and modification time; undefined for anything else or a failure. */
function entryInfo(dir: string, name: string): CacheEntryInfo | undefined {
  const st = statAt(`${dir}/${name}`, AT_SYMLINK_NOFOLLOW);
  if (st === undefined || (st.mode & S_IFMT) !== S_IFREG) return undefined;
  return { name, size: st.size, usedMs: st.mtimeSec * 1000 + Math.floor(st.mtimeNsec / 1e6) };
}

/**
 * Removes the least recently used entries of `dir` whose names end in
 * `suffix` until the rest fit in `maxBytes` ({@link entriesToEvict}).
 * Anything else in the directory (temporary files, other kinds) is left
 * alone; any failure leaves an entry where it was.
 *
 * @param dir the cache directory
 * @param suffix what an entry's name ends with (".kernel")
 * @param maxBytes the limit
 * @param keep an entry never to remove (the one just written)
 * @returns the names removed
 * @example
 * ```ts ignore
 * evictLeastRecentlyUsed(`${cache}/kernels`, ".kernel", 1 << 30, "abc.kernel");
 * ```
 */
export function evictLeastRecentlyUsed(
  dir: string,
  suffix: string,
  maxBytes: number,
  keep?: string,
): string[] {
  let names: string[];
  try {
    names = listDirectory(dir);
  } catch {
    return [];
  }
  const entries: CacheEntryInfo[] = [];
  for (const name of names) {
    if (!name.endsWith(suffix)) continue;
    const info = entryInfo(dir, name);
    if (info) entries.push(info);
  }
  return entriesToEvict(entries, maxBytes, keep).filter((name) =>
    libc.unlink(cstring(`${dir}/${name}`)) === 0
  );
}

const SYS_utimensat = 280n;

/**
 * Marks an open cache entry as used now (its modification time; the
 * content is not touched): `futimens(fd, NULL)`. Best effort.
 *
 * @param fd the entry, open
 * @returns whether it was marked
 */
export function markUsed(fd: number): boolean {
  return libc.syscall(SYS_utimensat, BigInt(fd), 0n, 0n, 0n, 0n, 0n) === 0n;
}
