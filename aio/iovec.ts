/**
 * A `struct iovec` array in host memory that a caller fills in place and
 * reuses, so a request of hundreds of segments (a virtio-blk read of 1 MiB
 * in 4 KiB guest pages) allocates nothing per segment: addresses and lengths
 * are plain numbers written as 32-bit halves, and the backend hands the
 * array's own address to preadv(2)/pwritev(2) or io_uring, without copying
 * it. Little-endian hosts only (x86-64, as KVM here).
 *
 * @module
 */
import { IOV_MAX } from "./types.ts";
import { viewAddress } from "../sys/address.ts";

const TWO32 = 0x1_0000_0000;

/**
 * A growable iovec array.
 *
 * @example
 * ```ts
 * import { HostIovec } from "./iovec.ts";
 * const v = new HostIovec();
 * v.reset();
 * v.push(0x7f00_0000_1000, 4096);
 * v.push(0x7f00_0000_8000, 512);
 * console.log(v.count, v.bytes); // 2 4608
 * ```
 */
export class HostIovec {
  #words: Uint32Array<ArrayBuffer>;
  #address: bigint;
  /** Segments in use. */
  count = 0;
  /** Their total length. */
  bytes = 0;

  /**
   * An empty array with room for `capacity` segments.
   *
   * @param capacity segments to allocate room for at first (grows up to IOV_MAX)
   */
  constructor(capacity = 16) {
    this.#words = new Uint32Array(4 * Math.max(1, Math.min(capacity, IOV_MAX)));
    this.#address = viewAddress(this.#words);
  }

  /** Host address of the first `struct iovec` (stable until the array grows). */
  get address(): bigint {
    return this.#address;
  }

  /** Empties it (keeps the memory). */
  reset(): void {
    this.count = 0;
    this.bytes = 0;
  }

  /**
   * Appends a segment. Grows the array (an allocation) only past its
   * largest size so far.
   *
   * @param addr host address, a safe integer
   * @param len bytes, a non-negative safe integer
   * @throws {RangeError} past IOV_MAX segments
   */
  push(addr: number, len: number): void {
    const i = this.count;
    if (4 * i >= this.#words.length) this.#grow();
    const w = this.#words;
    // ToUint32 keeps the low 32 bits of any integer double exactly (no
    // floating-point modulo); what it drops divides by 2^32 exactly.
    const addrLo = addr >>> 0, lenLo = len >>> 0;
    w[4 * i] = addrLo;
    w[4 * i + 1] = (addr - addrLo) / TWO32;
    w[4 * i + 2] = lenLo;
    w[4 * i + 3] = (len - lenLo) / TWO32;
    this.count = i + 1;
    this.bytes += len;
  }

  /**
   * Segment `i`'s host address (for tests and fallbacks).
   *
   * @param i index below count
   * @returns the address
   */
  addr(i: number): number {
    return this.#words[4 * i + 1] * TWO32 + this.#words[4 * i];
  }

  /**
   * Segment `i`'s length.
   *
   * @param i index below count
   * @returns bytes
   */
  len(i: number): number {
    return this.#words[4 * i + 3] * TWO32 + this.#words[4 * i + 2];
  }

  #grow(): void {
    const n = this.#words.length / 4;
    if (n >= IOV_MAX) throw new RangeError(`More than ${IOV_MAX} segments`);
    const words = new Uint32Array(4 * Math.min(IOV_MAX, n * 2));
    words.set(this.#words);
    this.#words = words;
    this.#address = viewAddress(words);
  }
}
