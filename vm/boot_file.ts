/**
 * A kernel or initrd named by path, held in an anonymous mapping of its own
 * instead of V8's heap, so that the VMM gives its pages back once the guest's
 * RAM holds the copy: a Debian kernel and a small initramfs are ~10 MiB that
 * a V8 ArrayBuffer would keep resident for the VM's life (its backing store
 * goes only with a full GC, which a quiet VMM rarely runs). A reboot reads
 * the file again, as Cloud Hypervisor opens its kernel path again when it
 * reboots (QEMU keeps its copy in a ROM blob instead).
 *
 * After {@link BootFile.release}, old views of the bytes read zeros (the
 * mapping stays; its pages are dropped with MADV_DONTNEED), never freed
 * memory.
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { sourceStamp } from "../sys/module_cache.ts";
import { mapBootFileMemory, takeReadAhead } from "./read_ahead.ts";
import {
  hostBuffer,
  MADV_DONTNEED,
  MADV_POPULATE_WRITE,
  madviseWholePages,
  munmap,
  readFileFfi,
} from "../sys/fd.ts";

/**
 * A boot file read into memory of its own.
 *
 * @example
 * ```ts ignore
 * const k = new BootFile("bzImage", 2 ** 31);
 * loadBzImage(mem, k.bytes, { cmdline: "console=ttyS0" });
 * k.release(); // the guest has its copy
 * k.bytes; // read again from the file (a reboot)
 * ```
 */
export class BootFile {
  /** The file. */
  readonly path: string;
  readonly #maxBytes: number;
  #addr = 0n;
  #capacity = 0;
  #bytes: Uint8Array<ArrayBuffer> | undefined;
  /** Times the file was read (statistics, tests). */
  reads = 0;
  /**
   * The file's stamp (sys/module_cache.ts `sourceStamp`) taken just before
   * its last read: a cache keyed by it never outlives a change to the file.
   */
  stamp: string | undefined;

  /**
   * Reads the file now (errors surface at configuration time), or takes
   * what the command line read ahead of it, unchanged since
   * (vm/read_ahead.ts).
   *
   * @param path the file
   * @param maxBytes refuse a larger file (RangeError)
   * @throws what {@link readFileFfi} throws
   */
  constructor(path: string, maxBytes: number) {
    this.path = path;
    this.#maxBytes = maxBytes;
    const ahead = takeReadAhead(path, maxBytes);
    if (ahead === undefined) {
      this.#bytes = this.#read();
      return;
    }
    this.reads++;
    this.stamp = ahead.stamp;
    this.#addr = ahead.addr;
    this.#capacity = ahead.capacity;
    this.#bytes = new Uint8Array(hostBuffer(ahead.addr, ahead.capacity), 0, ahead.size);
  }

  /** The contents: read again from the file if {@link release}d. */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes ??= this.#read();
  }

  /** Whether the contents are held now. */
  get held(): boolean {
    return this.#bytes !== undefined;
  }

  /** Gives the pages back; the next {@link bytes} reads the file again. */
  release(): void {
    if (this.#bytes === undefined) return;
    this.#bytes = undefined;
    libc.madvise(Deno.UnsafePointer.create(this.#addr), BigInt(this.#capacity), MADV_DONTNEED);
  }

  /**
   * Unmaps the memory: for a file read by a configuration that was then
   * refused, before anything could keep a view of it.
   */
  close(): void {
    this.#bytes = undefined;
    if (this.#capacity > 0) munmap(this.#addr, this.#capacity);
    this.#capacity = 0;
  }

  #read(): Uint8Array<ArrayBuffer> {
    this.reads++;
    try {
      this.stamp = sourceStamp(this.path);
    } catch {
      this.stamp = undefined; // the read below reports why
    }
    return readFileFfi(this.path, this.#maxBytes, {
      alloc: (size) => {
        // The mapping is reused while the file fits; a larger file gets a
        // new one (the old one stays mapped, holding no pages, for old views).
        if (size > this.#capacity || this.#capacity === 0) {
          ({ addr: this.#addr, capacity: this.#capacity } = mapBootFileMemory(size));
        }
        const view = new Uint8Array(hostBuffer(this.#addr, this.#capacity), 0, size);
        // Fault the pages in with one call, not one fault per page inside
        // read(2): a 7 MiB bzImage and a 2 MiB initrd read in 19 ms instead
        // of 33 on the 2-vCPU cloud VM (best effort: EINVAL before Linux 5.14).
        madviseWholePages(view, MADV_POPULATE_WRITE);
        return view;
      },
    });
  }
}
