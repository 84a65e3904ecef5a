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
import { MADV_DONTNEED } from "./fd.ts";

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
 * text: the segments of loaded ELF files (the deno binary, libc and the
 * libraries loaded with it, each within 1 GiB above its offset-0 mapping),
 * private, not writable, with resident pages and no private ones. Mappings
 * that come and go while threads run are left alone (V8's per-isolate copy
 * of its builtins, far from the binary; shared mappings, such as a
 * database's): one unmapped meanwhile could have its address reused for
 * anonymous memory, which MADV_DONTNEED would then wipe.
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
  const maps = [];
  for (const block of smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    // A file mapping has a non-zero inode and a path.
    const m = /^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) ([0-9a-f]+) \S+ [1-9]\d*[ \t]+(\/.*)$/m
      .exec(block);
    if (!m) continue;
    const anon = /^Anonymous:\s+(\d+) kB/m.exec(block);
    const rss = /^Rss:\s+(\d+) kB/m.exec(block);
    maps.push({
      start: BigInt(`0x${m[1]}`),
      end: BigInt(`0x${m[2]}`),
      perms: m[3],
      offset: BigInt(`0x${m[4]}`),
      path: m[5].trim(),
      // Without the fields, count it as holding private pages.
      clean: anon?.[1] === "0",
      resident: rss !== null && rss[1] !== "0",
    });
  }
  // Each file's load address: its lowest mapping at file offset 0.
  const base = new Map<string, bigint>();
  for (const m of maps) {
    const b = base.get(m.path);
    if (m.offset === 0n && (b === undefined || m.start < b)) base.set(m.path, m.start);
  }
  const out: [bigint, bigint][] = [];
  for (const m of maps) {
    const b = base.get(m.path);
    const loaded = b !== undefined && m.start >= b && m.start - b < 1n << 30n;
    if (loaded && m.perms[1] !== "w" && m.perms[3] === "p" && m.clean && m.resident) {
      out.push([m.start, m.end]);
    }
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
