/**
 * Gives memory that start-up used and no longer needs back to the kernel,
 * once a machine runs (bench/memory_bench.ts measures what it saves):
 *
 * - **glibc's free arena memory.** Start-up frees much of what it
 *   allocated (Deno reading the module graph, V8 compiling it on each
 *   thread, the devices' set-up), and glibc keeps freed memory in its
 *   arenas (one per thread that allocated), returning only the top of the
 *   main heap on its own. `malloc_trim(0)` walks every arena and releases
 *   each free page; it takes each arena's lock, like malloc itself.
 * - **Clean pages of mapped files.** Start-up runs code that the VMM never
 *   runs again (Deno's TypeScript parser reading the module graph, isolate
 *   creation reading the V8 snapshot). Its pages stay in this process's
 *   page tables, counted in its RSS, until the kernel reclaims them under
 *   pressure. MADV_DONTNEED on a private file mapping that is not writable
 *   and holds no private (copy-on-write) page drops them from the page
 *   tables at once: they stay in the page cache, and what runs again
 *   faults its page back in (a minor fault). Writable mappings, and
 *   read-only ones with private pages (RELRO: relocated, then made
 *   read-only), are left alone: there MADV_DONTNEED would lose data.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { readProcText } from "./procfs.ts";

const MADV_DONTNEED = 4;

/**
 * malloc_trim(0): returns the free memory of every malloc arena.
 *
 * @returns whether any memory was released
 * @example
 * ```ts
 * import { trimMalloc } from "./trim_memory.ts";
 * trimMalloc();
 * ```
 */
export function trimMalloc(): boolean {
  return libc.malloc_trim(0n) === 1;
}

/**
 * The mappings {@link dropCleanFilePages} may drop, from /proc/PID/smaps
 * text: file mappings, not writable, with resident pages and no private
 * ones.
 *
 * @param smaps the text of /proc/self/smaps
 * @returns [start, end) address ranges
 * @example
 * ```ts
 * import { cleanFileMappings } from "./trim_memory.ts";
 * const smaps = "7f00-7f10 r-xp 00000000 fe:00 12 /usr/lib/libc.so.6\nRss: 8 kB\nAnonymous: 0 kB\n";
 * console.log(cleanFileMappings(smaps)); // [[0x7f00n, 0x7f10n]]
 * ```
 */
export function cleanFileMappings(smaps: string): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (const block of smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    // A file mapping has a non-zero inode and a path.
    const m = /^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) \S+ \S+ [1-9]\d*[ \t]+\//.exec(block);
    if (!m || m[3][1] === "w") continue;
    const anon = /^Anonymous:\s+(\d+) kB/m.exec(block);
    const rss = /^Rss:\s+(\d+) kB/m.exec(block);
    // Without the fields, or with a private page, leave it.
    if (!anon || anon[1] !== "0" || !rss || rss[1] === "0") continue;
    out.push([BigInt(`0x${m[1]}`), BigInt(`0x${m[2]}`)]);
  }
  return out;
}

/**
 * Drops this process's clean file pages from its page tables (see the
 * module doc): they stay in the page cache.
 *
 * @returns how many mappings were dropped
 * @example
 * ```ts
 * import { dropCleanFilePages } from "./trim_memory.ts";
 * dropCleanFilePages();
 * ```
 */
export function dropCleanFilePages(): number {
  let n = 0;
  for (const [start, end] of cleanFileMappings(readProcText("/proc/self/smaps", 64 << 20))) {
    if (libc.madvise(Deno.UnsafePointer.create(start), end - start, MADV_DONTNEED) === 0) n++;
  }
  return n;
}
