/**
 * The kernel and initrd read ahead, on Deno's blocking pool, while the first
 * vCPU Worker starts (machine/early_start.ts): `new Worker()` blocks the main
 * thread until the Worker's isolate exists (~15 ms natively, ~0.35 s in the
 * nested KVM host), and reading a 7 MiB bzImage and a 2 MiB initrd takes
 * ~19 ms natively, on the main thread's path to the first KVM_RUN. A pool
 * thread reads the file meanwhile, into an
 * anonymous mapping of the kind vm/boot_file.ts reads into; the
 * {@link BootFile} for the same path adopts it instead of reading the file
 * again, when the file's stamp has not changed since.
 *
 * Only the command line reads ahead, and only what it will read anyway;
 * whatever goes wrong here (a missing file, a directory, a FIFO, a failed
 * read) only drops the read-ahead: the BootFile then reads the file itself
 * and reports the problem as it always does. Nothing is read after
 * {@link settleReadAheads}' caller has started building the machine, and
 * {@link dropReadAheads} unmaps what no BootFile took.
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { sourceStamp } from "../sys/module_cache.ts";
import {
  closeFd,
  fstat,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  mmap,
  munmap,
  O_CLOEXEC,
  O_NOCTTY,
  O_NONBLOCK,
  O_RDONLY,
  openFile,
  PROT_READ,
  PROT_WRITE,
  S_IFMT,
  S_IFREG,
  transferAllOnPool,
} from "../sys/fd.ts";

const PAGE = 4096;

/**
 * The memory a boot file is read into (here and by vm/boot_file.ts): an
 * anonymous mapping of whole pages, at least one, outside V8's heap.
 *
 * @param size the file's length
 * @returns the mapping's address and length
 */
export function mapBootFileMemory(size: number): { addr: bigint; capacity: number } {
  const capacity = Math.max(PAGE, Math.ceil(size / PAGE) * PAGE);
  const addr = mmap(capacity, {
    prot: PROT_READ | PROT_WRITE,
    flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
  });
  return { addr, capacity };
}

/** The largest file read ahead (a BootFile's own limit for a kernel or initrd). */
export const READ_AHEAD_MAX_BYTES = 2 ** 31;

/** A file read ahead into a mapping of its own. */
export interface ReadAhead {
  /** The file's stamp (sys/module_cache.ts `sourceStamp`), taken before the read. */
  readonly stamp: string;
  /** The mapping. */
  readonly addr: bigint;
  /** The mapping's length (whole pages). */
  readonly capacity: number;
  /** The file's length: the bytes read. */
  readonly size: number;
}

interface Entry extends ReadAhead {
  /** Settles when the pool thread is done with the mapping; true when every byte was read. */
  readonly done: Promise<boolean>;
  ok: boolean;
  settled: boolean;
}

const entries = new Map<string, Entry>();

/**
 * Whether reading ahead can overlap anything: this process may run on more
 * than one CPU. On one, the pool thread's read only takes turns with the
 * Worker's start it was meant to overlap, and in a one-CPU nested KVM host
 * the first KVM_RUN came later with it (5.7-13.5 s against 5.3-7.9 s
 * without, interleaved boots of a Debian kernel).
 *
 * @returns true when more than one CPU is available (or the mask is unknown)
 * @example
 * ```ts
 * import { readAheadOverlaps } from "./read_ahead.ts";
 * console.log(typeof readAheadOverlaps()); // "boolean"
 * ```
 */
export function readAheadOverlaps(): boolean {
  const mask = new Uint8Array(128);
  if (libc.sched_getaffinity(0, BigInt(mask.length), mask) !== 0) return true;
  let cpus = 0;
  for (let b of mask) {
    for (; b !== 0; b &= b - 1) cpus++;
  }
  return cpus > 1;
}

/**
 * Starts reading `path` on Deno's blocking pool, unless it is already being
 * read or is not a regular file of at most {@link READ_AHEAD_MAX_BYTES}.
 * Never throws: a file it cannot read is left to the BootFile.
 *
 * @param path the file, as the command line names it
 * @returns whether a read started
 * @example
 * ```ts ignore
 * readAhead("bzImage");
 * await settleReadAheads();
 * new BootFile("bzImage", 2 ** 31); // takes the bytes read ahead
 * ```
 */
export function readAhead(path: string): boolean {
  if (path === "" || entries.has(path)) return false;
  let fd = -1;
  let addr = 0n;
  let capacity = 0;
  try {
    const stamp = sourceStamp(path);
    fd = openFile(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    const st = fstat(fd);
    const size = Number(st.size);
    if ((st.mode & S_IFMT) !== S_IFREG || size <= 0 || size > READ_AHEAD_MAX_BYTES) {
      closeFd(fd);
      return false;
    }
    // Mapped, then kept for the catch below to unmap.
    ({ addr, capacity } = mapBootFileMemory(size));
    const file = fd;
    const entry: Entry = {
      stamp,
      addr,
      capacity,
      size,
      ok: false,
      settled: false,
      done: readOnPool(file, addr, size).catch(() => false).then((ok) => {
        closeFd(file);
        entry.ok = ok;
        entry.settled = true;
        return ok;
      }),
    };
    entries.set(path, entry);
    return true;
  } catch {
    if (capacity > 0) munmap(addr, capacity);
    if (fd >= 0) closeFd(fd);
    return false;
  }
}

/**
 * Preads the whole file into the mapping, in one call on the pool (a loop
 * only for a short read). One call, not a madvise first: each await of a
 * pool call resumes only in a turn of the main thread's event loop, which
 * the start-up's synchronous work (compiling the command) holds off, so a
 * second call would start only when the machine is being built. The pages
 * fault in inside read(2) (~30 ms for 9 MiB instead of ~19 with
 * MADV_POPULATE_WRITE first), on the pool thread, beside the main thread.
 */
function readOnPool(fd: number, addr: bigint, size: number): Promise<boolean> {
  // Any failure drops the read-ahead.
  return transferAllOnPool("pread", fd, addr, size, 0);
}

/**
 * Waits until no read-ahead is in flight (the command line awaits it before
 * it builds the machine, by when the reads have long finished).
 *
 * @returns when every read-ahead has settled
 */
export async function settleReadAheads(): Promise<void> {
  await Promise.all([...entries.values()].map((e) => e.done));
}

/**
 * The bytes read ahead for `path`, handed over once: only when the read
 * finished, the file is at most `maxBytes` and its stamp is what it was
 * before the read (else the read-ahead is dropped and undefined returned).
 * The caller owns the mapping from then on.
 *
 * @param path the file, named as it was for {@link readAhead}
 * @param maxBytes the caller's limit
 * @returns the mapping and its stamp, or undefined
 */
export function takeReadAhead(path: string, maxBytes: number): ReadAhead | undefined {
  const e = entries.get(path);
  if (e === undefined || !e.settled) return undefined;
  entries.delete(path);
  let same = false;
  try {
    same = sourceStamp(path) === e.stamp;
  } catch {
    // gone or unreadable now: the BootFile's own read says so
  }
  if (e.ok && same && e.size <= maxBytes) {
    return { stamp: e.stamp, addr: e.addr, capacity: e.capacity, size: e.size };
  }
  munmap(e.addr, e.capacity);
  return undefined;
}

/** Unmaps every settled read-ahead no BootFile took (after the machine was built, or was not). */
export function dropReadAheads(): void {
  for (const [path, e] of entries) {
    if (!e.settled) continue;
    entries.delete(path);
    munmap(e.addr, e.capacity);
  }
}
