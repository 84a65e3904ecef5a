/**
 * Guest RAM's regions as plain numbers, so the virtio-net data path can
 * turn a guest address into a host address (for writev iovecs and memcpy)
 * without a BigInt or a view per packet. x86-64 user addresses have 47
 * bits, well inside a double's exact integers.
 *
 * @module
 */
import { type GuestMemory, GuestMemoryError } from "../../memory/guest_memory.ts";

/**
 * Host addresses of guest RAM, refreshed at each device activation.
 *
 * @example
 * ```ts
 * import { GuestMemory } from "../../memory/guest_memory.ts";
 * import { GuestRamMap } from "./net_ram_map.ts";
 * const mem = GuestMemory.allocate(1 << 20);
 * const map = new GuestRamMap();
 * map.load(mem);
 * console.log(map.host(0x1000, 16) === Number(mem.hostAddress(0x1000, 16))); // true
 * mem.close();
 * ```
 */
export class GuestRamMap {
  #count = 0;
  readonly #start = new Float64Array(8);
  readonly #end = new Float64Array(8);
  readonly #host = new Float64Array(8);
  /** Each region's bytes (for the few header bytes the data path reads or writes itself). */
  readonly #bytes: Uint8Array[] = [];

  /**
   * Reads the regions of `mem` (at most 8; RAM without a host mapping maps to nothing).
   *
   * @param mem guest RAM
   */
  load(mem: GuestMemory): void {
    const regions = mem.layout.regions;
    let n = 0;
    this.#bytes.length = 0;
    for (const r of regions) {
      if (r.hostAddr === 0n || n >= this.#start.length) continue;
      this.#start[n] = r.guestAddr;
      this.#end[n] = r.guestAddr + r.size;
      this.#host[n] = Number(r.hostAddr);
      this.#bytes.push(mem.slice(r.guestAddr, r.size));
      n++;
    }
    this.#count = n;
  }

  /**
   * Writes iovec `i` of `v` for guest range [addr, addr+len) (one region):
   * the host address goes straight into the two 32-bit halves, so no
   * double is returned and boxed on the way.
   *
   * @param v view over an iovec array
   * @param i entry index
   * @param addr guest address
   * @param len bytes
   * @throws GuestMemoryError when the range is not mapped RAM
   */
  setIovec(v: DataView, i: number, addr: number, len: number): void {
    const r = this.#region(addr, len);
    const h = this.#host[r] + (addr - this.#start[r]);
    v.setUint32(i * IOV_BYTES, h >>> 0, true);
    v.setUint32(i * IOV_BYTES + 4, Math.floor(h / TWO_32), true);
    v.setUint32(i * IOV_BYTES + 8, len, true);
    v.setUint32(i * IOV_BYTES + 12, 0, true);
  }

  /**
   * Reads the guest byte at `addr`.
   *
   * @param addr guest address
   * @returns the byte
   * @throws GuestMemoryError when the address is not mapped RAM
   */
  readU8(addr: number): number {
    const r = this.#region(addr, 1);
    return this.#bytes[r][addr - this.#start[r]];
  }

  /**
   * Writes the guest byte at `addr`.
   *
   * @param addr guest address
   * @param value the byte
   * @throws GuestMemoryError when the address is not mapped RAM
   */
  writeU8(addr: number, value: number): void {
    const r = this.#region(addr, 1);
    this.#bytes[r][addr - this.#start[r]] = value;
  }

  /**
   * The host address of guest range [addr, addr+len), which must lie in
   * one region.
   *
   * @param addr guest address
   * @param len bytes
   * @returns host virtual address
   * @throws GuestMemoryError when the range is not mapped RAM
   */
  host(addr: number, len: number): number {
    const r = this.#region(addr, len);
    return this.#host[r] + (addr - this.#start[r]);
  }

  /** The region that holds all of [addr, addr+len); throws when none does. */
  #region(addr: number, len: number): number {
    for (let r = 0; r < this.#count; r++) {
      if (addr >= this.#start[r] && addr + len <= this.#end[r] && len >= 0) return r;
    }
    throw new GuestMemoryError(addr, len);
  }
}

/** Bytes of one struct iovec. */
export const IOV_BYTES = 16;
const TWO_32 = 0x1_0000_0000;

/**
 * Fills iovec `i` of an iovec array, the base as two 32-bit halves (no BigInt).
 *
 * @param v view over the iovec array
 * @param i entry index
 * @param host host address
 * @param len bytes
 * @example
 * ```ts
 * import { IOV_BYTES, setIovec } from "./net_ram_map.ts";
 * const v = new DataView(new ArrayBuffer(IOV_BYTES));
 * setIovec(v, 0, 0x7f00_0000_1000, 1514);
 * console.log(v.getBigUint64(0, true).toString(16)); // 7f0000001000
 * ```
 */
export function setIovec(v: DataView, i: number, host: number, len: number): void {
  v.setUint32(i * IOV_BYTES, host >>> 0, true);
  v.setUint32(i * IOV_BYTES + 4, Math.floor(host / TWO_32), true);
  v.setUint32(i * IOV_BYTES + 8, len, true);
  v.setUint32(i * IOV_BYTES + 12, 0, true);
}
