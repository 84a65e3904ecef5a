/**
 * A bzImage's kernel unpacked on the host and kept in the VMM's cache, so
 * that boots after the first skip the guest's own decompression (seconds for
 * a Debian kernel's xz payload under the nested host's emulator; ~1 s
 * natively). Firecracker and Cloud Hypervisor boot an uncompressed vmlinux
 * for the same reason; this keeps the user's bzImage and its KASLR (the
 * loader picks the physical and virtual placement and applies the kernel's
 * relocations, as its decompressor would: boot/unpacked_kernel.ts).
 *
 * One entry per kernel path, `$XDG_CACHE_HOME/denovmm/kernels/HASH.kernel`
 * (else under `$HOME/.cache`): a 4 KiB header (format, the bzImage's stamp
 * taken before it was read, the unpacked size, the payload's runs of zeros,
 * which the loader zeroes instead of copying, the lengths of the three
 * relocation lists), the unpacked payload, and the relocation lists as
 * little-endian 32-bit words, ready to use (parsing the kernel's table
 * again took ~7 ms a boot natively). A
 * stamp that no longer matches means the file changed: unpacked again and
 * replaced. Written through a temporary name and a rename; a cache directory
 * others may write is not used; any failure only means no cache. The
 * segments are read from the entry straight into guest RAM.
 *
 * A miss does not wait for the unpack: that boot runs the bzImage as it is
 * (its decompressor in the guest, as every boot under QEMU) while the
 * payload is unpacked on Deno's blocking pool, from a copy, and its entry
 * (~66 MiB) written there too (on a host with no CPU to spare, beside the
 * guest); the VM's close waits for a fill still in flight. In
 * the nested KVM host (boot_bench `DENOVMM_BOOT_COLD=1`) a first boot
 * unpacked on the host before the guest ran took 21.5 s, one the guest
 * decompressed 18.9 s (QEMU 18.3 s): the host's unpack (liblzma, ~0.75 s
 * natively for a Debian kernel, ~7 s there) only pays from the second
 * boot on. The main loop turns throughout.
 *
 * The directory is bounded: once its entries pass
 * `DENOVMM_KERNEL_CACHE_SIZE` (QEMU's size forms, `2G`, `512M`, a bare
 * number MiB; default 1G, about 15 Debian kernels) a fill removes the
 * entries least recently booted (sys/cache_eviction.ts; a hit marks its
 * entry used); `0` keeps none (each boot unpacks on the pool first, as
 * without a cache directory) and removes those there are.
 *
 * xz, zstd, LZ4 and gzip payloads are unpacked here (liblzma, libzstd,
 * liblz4, libz); other formats, a host without the library, or
 * `DENOVMM_KERNEL_UNPACK=0` (read through libc) boot the bzImage as it is.
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { errno } from "../sys/errno.ts";
import {
  closeFd,
  cstring,
  fstat,
  hostBuffer,
  MADV_POPULATE_WRITE,
  madviseWholePages,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  mmap,
  munmap,
  O_CLOEXEC,
  O_RDONLY,
  openFile,
  PROT_READ,
  PROT_WRITE,
} from "../sys/fd.ts";
import {
  hash53,
  privateCacheDir,
  temporaryWriterPid,
  writeCacheEntryOnPool,
} from "../sys/module_cache.ts";
import { processExists } from "../sys/signals.ts";
import { evictLeastRecentlyUsed, markUsed } from "../sys/cache_eviction.ts";
import { formatSize, parseSize } from "../machine/size.ts";
import { listDirectory } from "../sys/procfs.ts";
import { decompressAvailable, type DecompressFormat, decompressInto } from "../sys/decompress.ts";
import { parseBzImage } from "../boot/bzimage.ts";
import { traceMark } from "../sys/start_trace.ts";
import {
  type KernelLayout,
  kernelPayload,
  type KernelRelocations,
  parseKernelLayout,
  parseKernelRelocations,
  relocationsInside,
  unpackableFormat,
  type ZeroRun,
  zeroRunsOf,
} from "../boot/unpacked_kernel.ts";

const FORMAT = "denovmm-kernel 3";
/** Zero runs listed in an entry's header at most (the header is one page). */
const MAX_ZERO_RUNS = 128;
const HEADER_BYTES = 4096;
/** The ELF and program headers sit in the payload's first bytes. */
const HEAD_BYTES = 4096;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An unpacked kernel ready to load: its layout, relocations and segment bytes. */
export interface UnpackedKernelSource {
  /** The ELF layout. */
  readonly layout: KernelLayout;
  /** The relocation table. */
  readonly relocations: KernelRelocations;
  /** Bytes the payload unpacked to. */
  readonly unpackedSize: number;
  /** Its page-aligned runs of zeros, which the loader need not copy. */
  readonly zeroRuns: readonly ZeroRun[];
  /** Where it came from: "cache" or the format it was unpacked from now. */
  readonly origin: string;
  /**
   * Copies `dest.length` bytes of the unpacked payload from `offset` into
   * `dest` (a view of guest RAM).
   */
  copy(dest: Uint8Array, offset: number): void;
  /** Frees what it holds (a buffer, an fd). */
  close(): void;
}

function enabled(): boolean {
  const p = libc.getenv(cstring("DENOVMM_KERNEL_UNPACK"));
  return p === null || Deno.UnsafePointerView.getCString(p) !== "0";
}

/** The kernel cache's default bound: about 15 Debian kernels (~66 MiB each). */
export const DEFAULT_KERNEL_CACHE_BYTES = 1024 ** 3;
const ENTRY_SUFFIX = ".kernel";
let limitWarned = false;

/**
 * The kernel cache's bound in bytes: `DENOVMM_KERNEL_CACHE_SIZE`, else
 * {@link DEFAULT_KERNEL_CACHE_BYTES}. A value that is not a size is named
 * in one line (once) and the default used.
 */
function cacheLimit(): number {
  const p = libc.getenv(cstring("DENOVMM_KERNEL_CACHE_SIZE"));
  if (p === null) return DEFAULT_KERNEL_CACHE_BYTES;
  const text = Deno.UnsafePointerView.getCString(p);
  const bytes = parseSize(text);
  if (bytes !== undefined) return bytes;
  if (!limitWarned) {
    limitWarned = true;
    console.error(
      `denovmm: warning: DENOVMM_KERNEL_CACHE_SIZE=${JSON.stringify(text)} is not a size ` +
        `(e.g. 2G, 512M, 0): the kernel cache keeps up to ${
          formatSize(DEFAULT_KERNEL_CACHE_BYTES)
        }`,
    );
  }
  return DEFAULT_KERNEL_CACHE_BYTES;
}

/** The header line up to its zero runs: what must match for a hit. */
function headerKey(stamp: string, size: number): string {
  return `${FORMAT} ${stamp} ${size} `;
}

function formatRuns(runs: readonly ZeroRun[]): string {
  return runs.length === 0 ? "-" : runs.map((r) => `${r.start}+${r.end - r.start}`).join(",");
}

/** The runs of a header line, or undefined where they are not well formed. */
function parseRuns(text: string, size: number): ZeroRun[] | undefined {
  if (text === "-") return [];
  const runs: ZeroRun[] = [];
  let last = 0;
  for (const part of text.split(",")) {
    const m = /^(\d+)\+(\d+)$/.exec(part);
    if (!m) return undefined;
    const start = Number(m[1]), end = start + Number(m[2]);
    if (start < last || end <= start || end > size || start % 4096 || end % 4096) return undefined;
    runs.push({ start, end });
    last = end;
  }
  return runs;
}

/**
 * The kernel of `bzImage` unpacked: from the cache when its entry matches
 * `stamp`. On a miss the bzImage boots as it is this time (its own
 * decompressor runs in the guest, as under QEMU) while the payload is
 * unpacked on Deno's pool and stored for the next boot
 * ({@link kernelCacheFills}); without a cache (no stamp: bytes not from a
 * file, or no usable cache directory) it is unpacked now for this boot.
 *
 * @param path the bzImage's file (names the cache entry)
 * @param stamp the file's stamp taken before `bzImage` was read
 *   (sys/module_cache.ts `sourceStamp`)
 * @param bzImage its bytes (read until the promise settles, not after)
 * @returns the source, or undefined when this kernel is booted as it is
 *   (a cache miss; not a bzImage with an xz, zstd, LZ4 or gzip payload, no
 *   library, switched off)
 * @throws {DecompressError} when, without a cache, the payload is corrupt
 *   or of another size than declared
 * @example
 * ```ts ignore
 * const src = await unpackedKernelSource(file.path, file.stamp, file.bytes);
 * ```
 */
export async function unpackedKernelSource(
  path: string,
  stamp: string | undefined,
  bzImage: Uint8Array,
): Promise<UnpackedKernelSource | undefined> {
  if (!enabled()) return undefined;
  let header;
  try {
    header = parseBzImage(bzImage);
  } catch {
    return undefined;
  }
  if (!header.relocatable) return undefined;
  const payload = kernelPayload(bzImage, header);
  if (payload === undefined || !unpackableFormat(payload.format)) return undefined;
  const size = payload.unpackedSize;
  if (size < HEAD_BYTES || size > header.initSize) return undefined;
  const limit = stamp === undefined ? 0 : cacheLimit();
  const dir = stamp === undefined ? null : privateCacheDir("kernels");
  // A bound of 0: no entry kept, those there removed.
  if (dir !== null && limit === 0) evictLeastRecentlyUsed(dir, ENTRY_SUFFIX, 0);
  const entry = dir === null || limit === 0 ? null : `${dir}/${hash53(path)}${ENTRY_SUFFIX}`;
  const key = headerKey(stamp ?? "", size);
  if (entry !== null) {
    const hit = fromCache(entry, key, size);
    if (hit !== undefined) return hit;
  }
  if (!decompressAvailable(payload.format)) return undefined;
  if (entry !== null) {
    // A process killed while it filled an entry left its temporary file.
    removeStaleTemporaries(dir!);
    fillInBackground(path, entry, key, payload.format, payload.data, size, limit);
    return undefined;
  }
  const u = await unpack(payload.format, payload.data, size);
  if (u === undefined) return undefined;
  return {
    layout: u.layout,
    relocations: u.relocations,
    unpackedSize: size,
    zeroRuns: u.zeroRuns,
    origin: payload.format,
    copy: (dest, offset) => {
      populate(dest);
      dest.set(u.bytes.subarray(offset, offset + dest.length));
    },
    close: u.free,
  };
}

/** A payload unpacked into a mapping of its own, parsed. */
interface Unpacked {
  readonly bytes: Uint8Array;
  readonly layout: KernelLayout;
  readonly relocations: KernelRelocations;
  readonly zeroRuns: ZeroRun[];
  readonly free: () => void;
}

/**
 * Unpacks on Deno's pool and parses; undefined for a kernel whose
 * relocations reach outside it (its own decompressor, in the guest, judges
 * it). `data` must stay untouched until it settles.
 */
async function unpack(
  format: DecompressFormat,
  data: Uint8Array,
  size: number,
): Promise<Unpacked | undefined> {
  const capacity = Math.ceil(size / 4096) * 4096;
  const addr = mmap(capacity, {
    prot: PROT_READ | PROT_WRITE,
    flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
  });
  const free = () => munmap(addr, capacity);
  try {
    const bytes = new Uint8Array(hostBuffer(addr, capacity), 0, size);
    await decompressInto(format, data, bytes);
    const layout = parseKernelLayout(bytes.subarray(0, HEAD_BYTES), size);
    const relocations = parseKernelRelocations(bytes.subarray(layout.elfEnd));
    if (!relocationsInside(layout, relocations)) {
      free();
      return undefined;
    }
    // The longest runs where there are more than a header holds.
    const zeroRuns = zeroRunsOf(bytes).sort((a, b) => (b.end - b.start) - (a.end - a.start))
      .slice(0, MAX_ZERO_RUNS).sort((a, b) => a.start - b.start);
    return { bytes, layout, relocations, zeroRuns, free };
  } catch (e) {
    free();
    throw e;
  }
}

/**
 * Removes the temporary files in `dir` that processes no longer alive left
 * (one killed while it wrote an entry: a kernel's is ~66 MiB). A live
 * writer's are kept; any failure leaves the directory as it was.
 *
 * @param dir a kernel cache directory
 * @returns how many were removed
 */
export function removeStaleTemporaries(dir: string): number {
  let removed = 0;
  let names: string[];
  try {
    names = listDirectory(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const pid = temporaryWriterPid(name);
    if (pid === undefined || pid === Deno.pid || processExists(pid)) continue;
    if (libc.unlink(cstring(`${dir}/${name}`)) === 0) removed++;
  }
  return removed;
}

/** Cache entries being filled, by entry path. */
const fills = new Map<string, Promise<void>>();

/**
 * Unpacks a payload the cache missed and stores it, on Deno's pool, from a
 * copy of the payload (the caller frees the bzImage when its guest runs),
 * then keeps the directory within `limit` (least recently used entries
 * out). One fill per entry at a time; a failure costs only the entry (one
 * line).
 */
function fillInBackground(
  path: string,
  entry: string,
  key: string,
  format: DecompressFormat,
  data: Uint8Array,
  size: number,
  limit: number,
): void {
  if (fills.has(entry)) return;
  traceMark(`kernel not in the cache: the guest decompresses it; unpacking ${format} on the pool`);
  const copy = data.slice();
  const fill = (async () => {
    const u = await unpack(format, copy, size);
    if (u === undefined) return;
    let stored;
    try {
      stored = await store(entry, `${key}${formatRuns(u.zeroRuns)}`, u.bytes, u.relocations);
    } finally {
      u.free();
    }
    if (!stored) {
      traceMark("kernel unpacked; its cache entry could not be written");
      return;
    }
    const cut = entry.lastIndexOf("/");
    const evicted = evictLeastRecentlyUsed(
      entry.slice(0, cut),
      ENTRY_SUFFIX,
      limit,
      entry.slice(cut + 1),
    );
    const removed = evicted.length === 0
      ? ""
      : `; removed, least recently booted: ${evicted.length}`;
    traceMark(`kernel unpacked and stored in the cache${removed}`);
  })().catch((e) => {
    console.error(
      `denovmm: warning: could not unpack the kernel ${path} for the cache (${
        e instanceof Error ? e.message : e
      }); its boots stay decompressed by the guest`,
    );
  }).finally(() => fills.delete(entry));
  fills.set(entry, fill);
}

/**
 * Waits for the kernel cache entries still being filled (a VM's close
 * does, so that the process leaves no half-written entry behind).
 *
 * @returns when none is in flight; never rejects
 * @example
 * ```ts ignore
 * await kernelCacheFills();
 * ```
 */
export async function kernelCacheFills(): Promise<void> {
  while (fills.size > 0) await Promise.all(fills.values());
}

/**
 * Faults in the guest pages a segment is about to be read into, in one call
 * instead of one fault per page inside read(2): a ~58 MiB kernel is ~15000
 * pages, each fault costly on a virtualized host (read into fresh memory
 * ran at a quarter of the speed of read into touched memory on the 2-vCPU
 * cloud VM measured) and more so under the nested host's emulator. Best
 * effort: an older kernel (EINVAL) faults them in as before.
 */
function populate(dest: Uint8Array): void {
  madviseWholePages(dest, MADV_POPULATE_WRITE);
}

/** pread until `dest` is full; false on a short file or an error. */
function preadAll(fd: number, dest: Uint8Array, offset: number): boolean {
  let done = 0;
  while (done < dest.length) {
    const n = Number(
      libc.pread(fd, dest.subarray(done), BigInt(dest.length - done), BigInt(offset + done)),
    );
    if (n < 0 && errno() === 4) continue;
    if (n <= 0) return false;
    done += n;
  }
  return true;
}

function fromCache(entry: string, key: string, size: number): UnpackedKernelSource | undefined {
  let fd: number;
  try {
    fd = openFile(entry, O_RDONLY | O_CLOEXEC);
  } catch {
    return undefined;
  }
  try {
    const head = new Uint8Array(HEADER_BYTES + HEAD_BYTES);
    if (!preadAll(fd, head, 0)) throw new Error("short");
    const newline = head.subarray(0, HEADER_BYTES).indexOf(10);
    const line = decoder.decode(head.subarray(0, newline < 0 ? 0 : newline));
    if (!line.startsWith(key)) throw new Error("stale");
    const [runsText, countsText, ...rest] = line.slice(key.length).split(" ");
    const zeroRuns = parseRuns(runsText, size);
    const counts = /^(\d+),(\d+),(\d+)$/.exec(countsText ?? "")?.slice(1).map(Number);
    if (zeroRuns === undefined || counts === undefined || rest.length > 0) {
      throw new Error("bad header");
    }
    const words = counts[0] + counts[1] + counts[2];
    const listsAt = HEADER_BYTES + align4(size);
    if (fstat(fd).size !== listsAt + 4 * words) throw new Error("size");
    const layout = parseKernelLayout(head.subarray(HEADER_BYTES), size);
    const lists = new Int32Array(words);
    if (!preadAll(fd, new Uint8Array(lists.buffer), listsAt)) throw new Error("short");
    // Used now: the bound removes the entries least recently booted.
    markUsed(fd);
    const relocations: KernelRelocations = {
      relocs32: lists.subarray(0, counts[0]),
      relocsInverse32: lists.subarray(counts[0], counts[0] + counts[1]),
      relocs64: lists.subarray(counts[0] + counts[1]),
    };
    return {
      layout,
      relocations,
      unpackedSize: size,
      zeroRuns,
      origin: "cache",
      copy: (dest, offset) => {
        populate(dest);
        if (!preadAll(fd, dest, HEADER_BYTES + offset)) {
          throw new Error(`Kernel cache entry ${entry} was cut short while read`);
        }
      },
      close: () => closeFd(fd),
    };
  } catch {
    closeFd(fd);
    return undefined;
  }
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

/** Writes the entry on Deno's pool; resolves whether it was written. */
async function store(
  entry: string,
  line: string,
  bytes: Uint8Array,
  r: KernelRelocations,
): Promise<boolean> {
  const lists = [r.relocs32, r.relocsInverse32, r.relocs64];
  const text = encoder.encode(`${line} ${lists.map((l) => l.length).join(",")}\n`);
  if (text.length > HEADER_BYTES) return false; // a stamp that long: no cache
  const header = new Uint8Array(HEADER_BYTES);
  header.set(text);
  // Little-endian words, as this (x86) host reads them back into an Int32Array.
  const words = new Int32Array(lists.reduce((n, l) => n + l.length, 0));
  let at = 0;
  for (const l of lists) {
    words.set(l, at);
    at += l.length;
  }
  const pad = new Uint8Array(align4(bytes.length) - bytes.length);
  return await writeCacheEntryOnPool(entry, [header, bytes, pad, new Uint8Array(words.buffer)]);
}
