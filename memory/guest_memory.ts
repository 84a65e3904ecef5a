/**
 * Guest RAM: one anonymous mapping (as QEMU's default RAM backend), reachable
 * only through bounds-checked accessors.
 *
 * It is 2 MiB aligned, so where the host's transparent huge pages are on for
 * anonymous memory (`enabled=always`, Debian's default) it is backed by huge
 * pages and KVM maps the guest with 2 MiB pages: a guest touching fresh
 * memory (booting, filling its page cache) takes one fault per 2 MiB instead
 * of one per 4 KiB. (The memfd this used before is shmem, which hosts rarely
 * back with huge pages: in the nested host every first touch of a guest page
 * cost a 4 KiB nested-paging fault, ~75-100 µs.) It is deliberately not
 * MADV_HUGEPAGE: with the kernel's default `defrag=madvise`, that makes every
 * fault compact memory synchronously, and in the nested host a vCPU thread
 * sat in the kernel for minutes (soft lockup) once memory was fragmented. It
 * is MADV_DONTFORK, so a child process never makes guest RAM copy-on-write.
 *
 * The mapping lives in the process address space, so every Worker (vCPU, aio,
 * iothread) builds a GuestMemory over the same host address from a
 * {@link GuestMemoryLayout} and sees the same bytes, without copies.
 *
 * @module
 */
import {
  closeFd,
  hostBuffer,
  MADV_DONTFORK,
  MADV_DONTNEED,
  madviseWholePages,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  mmap,
  munmap,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
} from "../sys/fd.ts";
import { libc } from "../sys/libc.ts";
import { viewAddress } from "../sys/address.ts";

const HUGE_PAGE = 2 << 20;

/**
 * One contiguous range of guest RAM.
 *
 * @example
 * ```ts
 * import { GuestMemory } from "./guest_memory.ts";
 * const [low] = GuestMemory.fromBuffer(new ArrayBuffer(4096)).layout.regions;
 * console.log(low.guestAddr, low.size); // 0 4096
 * ```
 */
export interface MemoryRegion {
  /** Guest-physical start. */
  readonly guestAddr: number;
  /** Size in bytes. */
  readonly size: number;
  /** Host virtual address of the mapping. */
  readonly hostAddr: bigint;
  /** Offset of this region from the start of guest RAM's mapping. */
  readonly fdOffset: number;
}

/**
 * What a Worker needs to see the same guest RAM: plain data, postMessage-able.
 *
 * @example
 * ```ts
 * import { GuestMemory, type GuestMemoryLayout } from "./guest_memory.ts";
 * // In a device factory: the same RAM, in this thread.
 * export function ramOf(layout: GuestMemoryLayout): GuestMemory {
 *   return GuestMemory.fromLayout(layout);
 * }
 * ```
 */
export interface GuestMemoryLayout {
  /** The regions, sorted by guest address, not overlapping. */
  readonly regions: readonly MemoryRegion[];
  /** A backing fd to close with the memory (-1: none; guest RAM is anonymous). */
  readonly fd: number;
  /**
   * Where guest RAM lives in a SharedArrayBuffer (see
   * {@link GuestMemory.allocate}): every isolate views it through the buffer
   * itself (posted along with the layout), at the regions' host addresses.
   */
  readonly shared?: SharedArrayBuffer;
}

/**
 * A guest access outside RAM. Host memory is never touched when this is thrown.
 *
 * @example
 * ```ts
 * import { GuestMemory, GuestMemoryError } from "./guest_memory.ts";
 * const mem = GuestMemory.fromBuffer(new ArrayBuffer(4096));
 * try {
 *   mem.readU32(4094);
 * } catch (e) {
 *   console.log(e instanceof GuestMemoryError); // true
 * }
 * ```
 */
export class GuestMemoryError extends RangeError {
  /** The guest address of the access. */
  readonly address: number;
  /** Its length. */
  readonly length: number;
  /**
   * Describes an access outside RAM.
   *
   * @param address guest address
   * @param length bytes accessed
   */
  constructor(address: number, length: number) {
    super(
      `Guest memory access out of range: 0x${address.toString(16)} (+${length})`,
    );
    this.name = "GuestMemoryError";
    this.address = address;
    this.length = length;
  }
}

/** Where the 32-bit PCI hole starts on a PC: RAM above this moves to 4 GiB. */
export const PCI_HOLE_START = 0xc000_0000;
/** Where RAM resumes above the hole. */
export const HIGH_RAM_START = 0x1_0000_0000;

/**
 * Bounds-checked guest RAM.
 *
 * @example
 * ```ts
 * import { GuestMemory } from "./guest_memory.ts";
 * const mem = GuestMemory.fromBuffer(new ArrayBuffer(4096));
 * mem.writeU32(0x10, 0xdeadbeef);
 * console.log(mem.readU32(0x10).toString(16));
 * ```
 */
export class GuestMemory {
  /** The layout; post it to a Worker and call {@link GuestMemory.fromLayout}. */
  readonly layout: GuestMemoryLayout;
  readonly #starts: number[];
  /** Each region's host address as a number (below 2^47), for iovec building. */
  readonly #hostStarts: number[];
  readonly #ends: number[];
  readonly #bytes: Uint8Array<ArrayBuffer>[];
  readonly #views: DataView<ArrayBuffer>[];
  /** The mapping this instance made (allocate()), released by close(). */
  #mapping: { addr: bigint; size: number } | null = null;

  private constructor(layout: GuestMemoryLayout, buffers: RegionBuffer[]) {
    this.layout = layout;
    this.#starts = layout.regions.map((r) => r.guestAddr);
    this.#ends = layout.regions.map((r) => r.guestAddr + r.size);
    // Views over a SharedArrayBuffer are typed as over an ArrayBuffer: the
    // FFI and the Web APIs the devices hand guest memory to take shared
    // views too (Deno 2.9: write(2) and the other buffer parameters,
    // TextDecoder, TextEncoder.encodeInto, crypto.getRandomValues).
    this.#bytes = buffers.map((b) =>
      new Uint8Array(b.buffer, b.at, b.size) as Uint8Array<ArrayBuffer>
    );
    this.#views = buffers.map((b) => new DataView(b.buffer, b.at, b.size) as DataView<ArrayBuffer>);
    // -1: no host address (test memory over a plain buffer).
    this.#hostStarts = layout.regions.map((r) => r.hostAddr === 0n ? -1 : Number(r.hostAddr));
  }

  /**
   * Allocates guest RAM of `size` bytes as a PC lays it out: below 3 GiB, and
   * the rest above 4 GiB.
   *
   * @param size bytes of RAM
   * @returns the new memory
   */
  static allocate(size: number): GuestMemory {
    if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
      throw new RangeError(`Invalid guest memory size ${size}`);
    }
    const shared = sharedRam(size);
    const hostAddr = shared ? shared.addr : mapHugeAligned(size);
    const fd = -1;
    const low = Math.min(size, PCI_HOLE_START);
    const regions: MemoryRegion[] = [{ guestAddr: 0, size: low, hostAddr, fdOffset: 0 }];
    if (size > low) {
      regions.push({
        guestAddr: HIGH_RAM_START,
        size: size - low,
        hostAddr: hostAddr + BigInt(low),
        fdOffset: low,
      });
    }
    const m = GuestMemory.fromLayout({ regions, fd, shared: shared?.buffer });
    m.#mapping = { addr: hostAddr, size };
    return m;
  }

  /**
   * Views guest RAM another thread allocated (same process).
   *
   * @param layout the allocating thread's {@link GuestMemory.layout}
   * @returns a view over the same memory
   */
  static fromLayout(layout: GuestMemoryLayout): GuestMemory {
    const shared = layout.shared;
    if (shared) {
      // Same process, same addresses: the regions' offsets in the buffer.
      const base = viewAddress(new Uint8Array(shared));
      return new GuestMemory(
        layout,
        layout.regions.map((r) => {
          const at = Number(r.hostAddr - base);
          if (!(at >= 0 && at + r.size <= shared.byteLength)) {
            throw new RangeError("Guest memory region outside its shared buffer");
          }
          return { buffer: shared, at, size: r.size };
        }),
      );
    }
    return new GuestMemory(
      layout,
      layout.regions.map((r) => ({ buffer: hostBuffer(r.hostAddr, r.size), at: 0, size: r.size })),
    );
  }

  /**
   * Test memory over a plain buffer at guest address 0 (no host address).
   *
   * @param buffer backing bytes
   * @returns the memory
   */
  static fromBuffer(buffer: ArrayBuffer): GuestMemory {
    const layout = {
      regions: [{ guestAddr: 0, size: buffer.byteLength, hostAddr: 0n, fdOffset: 0 }],
      fd: -1,
    };
    return new GuestMemory(layout, [{ buffer, at: 0, size: buffer.byteLength }]);
  }

  /** Total RAM bytes. */
  get size(): number {
    let s = 0;
    for (const r of this.layout.regions) s += r.size;
    return s;
  }

  /** Index of the region holding [addr, addr+len), or -1. */
  #find(addr: number, len: number): number {
    const starts = this.#starts;
    for (let i = starts.length - 1; i >= 0; i--) {
      if (addr >= starts[i]) {
        return addr + len <= this.#ends[i] && len >= 0 ? i : -1;
      }
    }
    return -1;
  }

  #region(addr: number, len: number): number {
    const i = this.#find(addr, len);
    if (i < 0 || !Number.isSafeInteger(addr)) throw new GuestMemoryError(addr, len);
    return i;
  }

  /**
   * Whether [addr, addr+len) lies wholly in one RAM region.
   *
   * @param addr guest address
   * @param len bytes
   * @returns true if the range is RAM
   */
  contains(addr: number, len: number): boolean {
    return this.regionOf(addr, len) >= 0;
  }

  /**
   * The region holding [addr, addr+len), for a hot path that reads many
   * fields of one guest structure through {@link GuestMemory.regionView}
   * after checking the whole structure once.
   *
   * @param addr guest address
   * @param len bytes
   * @returns the region's index, or -1 when the range is not RAM
   */
  regionOf(addr: number, len: number): number {
    return Number.isSafeInteger(addr) && addr >= 0 ? this.#find(addr, len) : -1;
  }

  /**
   * Region `i`'s bytes as a DataView from its first byte: guest address `a`
   * is at offset `a - regionStart(i)`. Only for ranges
   * {@link GuestMemory.regionOf} has checked.
   *
   * @param i a region index
   * @returns the view
   */
  regionView(i: number): DataView<ArrayBuffer> {
    return this.#views[i];
  }

  /**
   * Where region `i` starts in guest-physical memory.
   *
   * @param i a region index
   * @returns its first guest address
   */
  regionStart(i: number): number {
    return this.#starts[i];
  }

  /**
   * {@link GuestMemory.hostAddressNumber} for a range already checked to
   * lie in region `i` (no region search).
   *
   * @param i the range's region, from {@link GuestMemory.regionOf}
   * @param addr guest address
   * @param len bytes (for the error)
   * @returns host virtual address
   */
  hostAddressIn(i: number, addr: number, len: number): number {
    const host = this.#hostStarts[i];
    if (host < 0) throw new GuestMemoryError(addr, len);
    return host + (addr - this.#starts[i]);
  }

  /**
   * A zero-copy view of guest bytes; the range must lie in one region.
   *
   * @param addr guest address
   * @param len bytes
   * @returns a Uint8Array aliasing guest RAM
   */
  slice(addr: number, len: number): Uint8Array<ArrayBuffer> {
    const i = this.#region(addr, len);
    const off = addr - this.#starts[i];
    return this.#bytes[i].subarray(off, off + len);
  }

  /**
   * The host address of a guest range, for syscalls that write guest RAM
   * directly (pread into guest memory).
   *
   * @param addr guest address
   * @param len bytes
   * @returns host virtual address
   */
  hostAddress(addr: number, len: number): bigint {
    const i = this.#region(addr, len);
    const r = this.layout.regions[i];
    if (r.hostAddr === 0n) throw new GuestMemoryError(addr, len);
    return r.hostAddr + BigInt(addr - r.guestAddr);
  }

  /**
   * {@link GuestMemory.hostAddress} as a number, for hot paths that build
   * iovec arrays without allocating a BigInt per segment (host user
   * addresses lie below 2^47, exact in a double).
   *
   * @param addr guest address
   * @param len bytes
   * @returns host virtual address
   */
  hostAddressNumber(addr: number, len: number): number {
    return this.hostAddressIn(this.#region(addr, len), addr, len);
  }

  /**
   * Copies guest bytes into dst.
   *
   * @param addr guest address
   * @param dst destination
   */
  read(addr: number, dst: Uint8Array): void {
    dst.set(this.slice(addr, dst.length));
  }

  /**
   * Copies src into guest RAM.
   *
   * @param addr guest address
   * @param src bytes
   */
  write(addr: number, src: Uint8Array): void {
    this.slice(addr, src.length).set(src);
  }

  /**
   * Fills a guest range with a byte.
   *
   * @param addr guest address
   * @param len bytes
   * @param value byte value
   */
  fill(addr: number, len: number, value = 0): void {
    this.slice(addr, len).fill(value);
  }

  /**
   * Makes a guest range read as zeros, without touching the whole pages
   * inside it where it can: on RAM this instance allocated (private and
   * anonymous) those are dropped (MADV_DONTNEED: zero-filled on their next
   * use, and a no-op for pages never touched, as in fresh RAM); the partial
   * pages at its ends, and memory of any other kind, are filled.
   *
   * @param addr guest address
   * @param len bytes
   */
  zero(addr: number, len: number): void {
    const bytes = this.slice(addr, len);
    const dropped = this.#mapping ? madviseWholePages(bytes, MADV_DONTNEED) : undefined;
    if (dropped === undefined) {
      bytes.fill(0);
      return;
    }
    bytes.subarray(0, dropped.start).fill(0);
    bytes.subarray(dropped.end).fill(0);
  }

  /** Reads a byte. @param addr guest address @returns the value */
  readU8(addr: number): number {
    const i = this.#region(addr, 1);
    return this.#bytes[i][addr - this.#starts[i]];
  }
  /** Reads a little-endian u16. @param addr guest address @returns the value */
  readU16(addr: number): number {
    const i = this.#region(addr, 2);
    return this.#views[i].getUint16(addr - this.#starts[i], true);
  }
  /** Reads a little-endian u32. @param addr guest address @returns the value */
  readU32(addr: number): number {
    const i = this.#region(addr, 4);
    return this.#views[i].getUint32(addr - this.#starts[i], true);
  }
  /** Reads a little-endian u64. @param addr guest address @returns the value */
  readU64(addr: number): bigint {
    const i = this.#region(addr, 8);
    return this.#views[i].getBigUint64(addr - this.#starts[i], true);
  }
  /** Writes a byte. @param addr guest address @param v value */
  writeU8(addr: number, v: number): void {
    const i = this.#region(addr, 1);
    this.#bytes[i][addr - this.#starts[i]] = v;
  }
  /** Writes a little-endian u16. @param addr guest address @param v value */
  writeU16(addr: number, v: number): void {
    const i = this.#region(addr, 2);
    this.#views[i].setUint16(addr - this.#starts[i], v, true);
  }
  /** Writes a little-endian u32. @param addr guest address @param v value */
  writeU32(addr: number, v: number): void {
    const i = this.#region(addr, 4);
    this.#views[i].setUint32(addr - this.#starts[i], v, true);
  }
  /** Writes a little-endian u64. @param addr guest address @param v value */
  writeU64(addr: number, v: bigint): void {
    const i = this.#region(addr, 8);
    this.#views[i].setBigUint64(addr - this.#starts[i], v, true);
  }

  /**
   * Releases guest RAM: unmaps it (on the instance that allocated it) and
   * closes the backing memfd, so the pages go back to the host - a machine
   * that resets in a loop (`--reboot`) allocates afresh each time. Call it
   * once every thread that viewed this RAM has stopped (vCPU Workers ended,
   * aio drained): a view used after the unmap would fault. This instance
   * refuses every access from now on (GuestMemoryError). Idempotent; on
   * a view from {@link GuestMemory.fromLayout} it only drops the view.
   */
  close(): void {
    for (const a of [this.#starts, this.#ends, this.#bytes, this.#views]) a.length = 0;
    const mapping = this.#mapping;
    if (!mapping) return; // a view (fromLayout/fromBuffer): the owner releases the RAM
    this.#mapping = null;
    const p = Deno.UnsafePointer.create(mapping.addr);
    const shared = this.layout.shared;
    if (shared) {
      // The buffer's memory is the allocator's to unmap when the last
      // isolate drops it: give the pages back now, fault any late access,
      // and keep it for the next RAM of its size (a machine that resets in
      // a loop), which then needs no collection to free this one.
      libc.madvise(p, BigInt(mapping.size), MADV_DONTNEED);
      libc.mprotect(p, BigInt(mapping.size), PROT_NONE);
      spareRam = { buffer: shared, addr: mapping.addr, size: mapping.size };
    } else munmap(mapping.addr, mapping.size);
    if (this.layout.fd >= 0) closeFd(this.layout.fd);
  }
}

/** A region's bytes: `size` of them from `at` in `buffer`. */
interface RegionBuffer {
  buffer: ArrayBuffer | SharedArrayBuffer;
  at: number;
  size: number;
}

/**
 * Below this, guest RAM is mapped by hand: glibc serves smaller allocations
 * from its heap rather than a mapping of their own (its mmap threshold is
 * at most 32 MiB), and close() must be able to give the pages back.
 */
const SHARED_RAM_MIN = 64 << 20;
/** The last shared RAM closed, kept for the next of its size (see close()). */
let spareRam: { buffer: SharedArrayBuffer; addr: bigint; size: number } | undefined;
const _SC_PAGESIZE = 30;
const _SC_PHYS_PAGES = 85;

/**
 * Guest RAM of `size` bytes in a SharedArrayBuffer, at a 2 MiB boundary
 * inside it, excluded from fork; undefined where it should not or cannot
 * be (small RAM; more than half the host's memory, which an allocation
 * without MAP_NORESERVE may be refused, and a refused one costs V8 several
 * full collections first; the allocation failed).
 *
 * Why: V8 counts an ArrayBuffer over foreign memory (what
 * `Deno.UnsafePointerView.getArrayBuffer` makes) as external memory of each
 * isolate that views it, and 256 MiB of it, over V8's 64 MiB limit, made
 * the main thread and each vCPU Worker collect garbage on the way to the
 * first KVM_RUN (natively ~7 ms on the main thread, 100-200 ms under the
 * nested host's emulator). A shared buffer is never counted. glibc maps it
 * on its own and lazily zero-fills it, as the mapping it replaces.
 */
function sharedRam(size: number): { buffer: SharedArrayBuffer; addr: bigint } | undefined {
  if (size < SHARED_RAM_MIN) return undefined;
  const spare = spareRam;
  if (spare?.size === size) {
    // Zero since close() dropped its pages.
    spareRam = undefined;
    const p = Deno.UnsafePointer.create(spare.addr);
    if (libc.mprotect(p, BigInt(size), PROT_READ | PROT_WRITE) === 0) return spare;
  }
  const host = Number(libc.sysconf(_SC_PHYS_PAGES)) * Number(libc.sysconf(_SC_PAGESIZE));
  if (!(size <= host / 2)) return undefined;
  let buffer: SharedArrayBuffer;
  try {
    buffer = new SharedArrayBuffer(size + HUGE_PAGE);
  } catch {
    return undefined;
  }
  const base = viewAddress(new Uint8Array(buffer));
  const mask = BigInt(HUGE_PAGE - 1);
  const addr = (base + mask) & ~mask;
  libc.madvise(Deno.UnsafePointer.create(addr), BigInt(size), MADV_DONTFORK);
  return { buffer, addr };
}

/**
 * Maps size bytes of anonymous memory at a 2 MiB boundary, excluded from
 * fork (advice the host refuses is ignored).
 */
function mapHugeAligned(size: number): bigint {
  const raw = mmap(size + HUGE_PAGE, {
    prot: PROT_READ | PROT_WRITE,
    flags: MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
  });
  const mask = BigInt(HUGE_PAGE - 1);
  const addr = (raw + mask) & ~mask;
  const head = Number(addr - raw);
  if (head > 0) munmap(raw, head);
  if (HUGE_PAGE - head > 0) munmap(addr + BigInt(size), HUGE_PAGE - head);
  libc.madvise(Deno.UnsafePointer.create(addr), BigInt(size), MADV_DONTFORK);
  return addr;
}
