/**
 * A little-endian byte writer for building tables (not a hot path).
 *
 * @module
 */

/** Appends little-endian integers and bytes to a growing buffer. */
export class ByteWriter {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #len = 0;

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  #reserve(n: number): number {
    const at = this.#len;
    if (at + n > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(this.#buf.length * 2, at + n));
      bigger.set(this.#buf.subarray(0, at));
      this.#buf = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    this.#len += n;
    return at;
  }

  /** Appends a byte. */
  u8(v: number): this {
    const at = this.#reserve(1);
    this.#view.setUint8(at, check(v, 0xff));
    return this;
  }

  /** Appends a u16. */
  u16(v: number): this {
    const at = this.#reserve(2);
    this.#view.setUint16(at, check(v, 0xffff), true);
    return this;
  }

  /** Appends a u32. */
  u32(v: number): this {
    const at = this.#reserve(4);
    this.#view.setUint32(at, check(v, 0xffff_ffff), true);
    return this;
  }

  /** Appends a u64. */
  u64(v: number | bigint): this {
    const b = BigInt(v);
    if (b < 0n || b > 0xffff_ffff_ffff_ffffn) throw new RangeError(`Value ${v} is not a u64`);
    const at = this.#reserve(8);
    this.#view.setBigUint64(at, b, true);
    return this;
  }

  /** Appends bytes. */
  bytes(b: Uint8Array): this {
    const at = this.#reserve(b.length);
    this.#buf.set(b, at);
    return this;
  }

  /** Appends an ASCII string padded with `pad` (or cut) to `size` bytes. */
  ascii(s: string, size: number, pad = 0x20): this {
    const at = this.#reserve(size);
    for (let i = 0; i < size; i++) {
      const c = i < s.length ? s.charCodeAt(i) : pad;
      if (c > 0x7e) throw new RangeError(`Not ASCII: ${s}`);
      this.#buf[at + i] = c;
    }
    return this;
  }

  /** Appends n zero bytes. */
  zeros(n: number): this {
    this.#reserve(n);
    return this;
  }

  /** Overwrites a u32 at a given offset. */
  setU32(offset: number, v: number): void {
    this.#view.setUint32(offset, check(v, 0xffff_ffff), true);
  }

  /** A copy of the bytes written. */
  toBytes(): Uint8Array<ArrayBuffer> {
    return this.#buf.slice(0, this.#len);
  }
}

function check(v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`Value ${v} does not fit in ${max.toString(16).length * 4} bits`);
  }
  return v;
}

/**
 * The byte that makes `bytes` sum to zero (mod 256) once stored at `at`,
 * where it currently holds 0.
 */
export function checksum(bytes: Uint8Array): number {
  let s = 0;
  for (const b of bytes) s = (s + b) & 0xff;
  return (0x100 - s) & 0xff;
}
