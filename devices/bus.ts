/**
 * The PIO and MMIO buses: address ranges mapped to devices, looked up by
 * binary search over sorted arrays so an exit allocates nothing.
 *
 * @module
 */

/**
 * A device on a bus. Offsets are relative to the range it was inserted at;
 * `data.length` is the access size (1, 2, 4 or 8). A read fills `data`.
 * Devices run in whichever thread took the exit (a vCPU Worker), under the
 * VM's big lock; they know nothing of KVM, Workers or poll.
 *
 * @example
 * ```ts
 * import type { BusDevice } from "./bus.ts";
 * // A scratch register: reads return what was last written.
 * const scratch = new Uint8Array(1);
 * const dev: BusDevice = {
 *   read(_offset, data) { data.fill(scratch[0]); },
 *   write(_offset, data) { scratch[0] = data[0]; },
 * };
 * dev.write(0, new Uint8Array([7]));
 * ```
 */
export interface BusDevice {
  /** Handles a guest read of `data.length` bytes at `offset`. */
  read(offset: number, data: Uint8Array): void;
  /** Handles a guest write of `data` at `offset`. */
  write(offset: number, data: Uint8Array): void;
}

/** Thrown when a new range overlaps one already on the bus. */
export class BusOverlapError extends Error {
  /**
   * @param base start of the rejected range
   * @param size its length
   */
  constructor(base: number, size: number) {
    super(`Bus range 0x${base.toString(16)}+0x${size.toString(16)} overlaps an existing device`);
    this.name = "BusOverlapError";
  }
}

/**
 * An address space of devices.
 *
 * @example
 * ```ts
 * import { Bus } from "./bus.ts";
 * const bus = new Bus();
 * const regs = new Uint8Array(8);
 * bus.insert({ read: (o, d) => (d[0] = regs[o]), write: (o, d) => (regs[o] = d[0]) }, 0x3f8, 8);
 * bus.write(0x3f9, new Uint8Array([5]));
 * ```
 */
export class Bus {
  #bases: number[] = [];
  #ends: number[] = [];
  #devices: BusDevice[] = [];

  /**
   * Maps [base, base+size) to a device; throws BusOverlapError on overlap.
   *
   * @param device the device
   * @param base first address
   * @param size length in bytes
   */
  insert(device: BusDevice, base: number, size: number): void {
    if (size <= 0 || base < 0) throw new RangeError(`Invalid bus range ${base}+${size}`);
    const end = base + size;
    let i = 0;
    while (i < this.#bases.length && this.#bases[i] < base) i++;
    if (i > 0 && this.#ends[i - 1] > base) throw new BusOverlapError(base, size);
    if (i < this.#bases.length && this.#bases[i] < end) throw new BusOverlapError(base, size);
    this.#bases.splice(i, 0, base);
    this.#ends.splice(i, 0, end);
    this.#devices.splice(i, 0, device);
  }

  /**
   * Removes the device mapped at base.
   *
   * @param base the range's first address
   * @returns whether a range was removed
   */
  remove(base: number): boolean {
    const i = this.#bases.indexOf(base);
    if (i < 0) return false;
    this.#bases.splice(i, 1);
    this.#ends.splice(i, 1);
    this.#devices.splice(i, 1);
    return true;
  }

  /** Index of the range containing addr, or -1. */
  #lookup(addr: number): number {
    const bases = this.#bases;
    let lo = 0, hi = bases.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (bases[mid] <= addr) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found >= 0 && addr < this.#ends[found] ? found : -1;
  }

  /**
   * Dispatches a read; returns false (data untouched) when nothing is mapped.
   *
   * @param addr bus address
   * @param data buffer to fill, sized to the access
   * @returns whether a device handled it
   */
  read(addr: number, data: Uint8Array): boolean {
    const i = this.#lookup(addr);
    if (i < 0) return false;
    this.#devices[i].read(addr - this.#bases[i], data);
    return true;
  }

  /**
   * Dispatches a write; returns false when nothing is mapped.
   *
   * @param addr bus address
   * @param data bytes written
   * @returns whether a device handled it
   */
  write(addr: number, data: Uint8Array): boolean {
    const i = this.#lookup(addr);
    if (i < 0) return false;
    this.#devices[i].write(addr - this.#bases[i], data);
    return true;
  }
}
