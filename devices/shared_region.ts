/**
 * Device registers in shared memory: each device's region carved out of one
 * SharedArrayBuffer, so every thread running device code sees the same bytes.
 *
 * @module
 */

/** A device's slice of the shared buffer: plain and postMessage-able. */
export interface SharedRegion {
  /** The buffer. */
  sab: SharedArrayBuffer;
  /** First byte of the region. */
  offset: number;
  /** Bytes in the region. */
  length: number;
}

/**
 * Lays out regions in one SharedArrayBuffer: reserve each device's bytes,
 * then allocate the buffer once and hand each device its region.
 *
 * @example
 * ```ts
 * import { BigLock } from "./big_lock.ts";
 * import { SharedLayout } from "./shared_region.ts";
 * const layout = new SharedLayout();
 * const lockAt = layout.reserve(BigLock.BYTES, 4);
 * const uartAt = layout.reserve(64);
 * const sab = layout.allocate();
 * const lock = new BigLock({ sab, offset: lockAt });
 * const uart = { sab, offset: uartAt, length: 64 };
 * ```
 */
export class SharedLayout {
  #size = 0;

  /** Bytes reserved so far (the buffer size allocate() will use). */
  get size(): number {
    return this.#size;
  }

  /**
   * Reserves `length` bytes aligned to `align`.
   *
   * @param length bytes
   * @param align power-of-two alignment, default 8 (fits Float64Array views)
   * @returns the region's offset
   */
  reserve(length: number, align = 8): number {
    if (!Number.isInteger(length) || length <= 0) {
      throw new RangeError(`Invalid region length ${length}`);
    }
    if (!Number.isInteger(align) || align <= 0 || (align & (align - 1)) !== 0) {
      throw new RangeError(`Invalid region alignment ${align}`);
    }
    const offset = (this.#size + align - 1) & ~(align - 1);
    this.#size = offset + length;
    return offset;
  }

  /**
   * Allocates a zeroed buffer big enough for every reservation.
   *
   * @returns the shared buffer
   */
  allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(Math.max(8, (this.#size + 7) & ~7));
  }
}

/**
 * Validates a region against its buffer and the size a device needs.
 *
 * @param region the region handed to a device
 * @param minLength bytes the device needs
 * @returns the region, unchanged
 * @example
 * ```ts
 * import { checkRegion } from "./shared_region.ts";
 * const sab = new SharedArrayBuffer(64);
 * checkRegion({ sab, offset: 0, length: 64 }, 32);
 * ```
 */
export function checkRegion(region: SharedRegion, minLength: number): SharedRegion {
  const { sab, offset, length } = region;
  if (!(sab instanceof SharedArrayBuffer)) throw new TypeError("Region is not a SharedArrayBuffer");
  if (!Number.isInteger(offset) || offset < 0 || offset % 8 !== 0) {
    throw new RangeError(`Region offset ${offset} is not 8-byte aligned`);
  }
  if (length < minLength) throw new RangeError(`Region of ${length} bytes is under ${minLength}`);
  if (offset + length > sab.byteLength) {
    throw new RangeError(`Region ${offset}+${length} is outside the shared buffer`);
  }
  return region;
}
