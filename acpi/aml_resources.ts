/**
 * The resource descriptors a _CRS holds (ACPI 6.x section 6.4): I/O ports,
 * ISA IRQs, and word/dword/qword address spaces. Each returns the raw
 * descriptor bytes; `resourceTemplate` in aml.ts wraps them in a buffer.
 *
 * @module
 */

/**
 * IO(Decode16, min, max, align, length).
 *
 * @param min lowest base
 * @param max highest base
 * @param align base alignment
 * @param length ports
 * @returns the descriptor
 * @example
 * ```ts
 * import { ioPort } from "./aml.ts";
 * ioPort(0xcf8, 0xcf8, 1, 8);
 * ```
 */
export function ioPort(min: number, max: number, align: number, length: number): Uint8Array {
  return new Uint8Array([
    0x47,
    0x01,
    min & 0xff,
    min >> 8,
    max & 0xff,
    max >> 8,
    align,
    length,
  ]);
}

/**
 * IRQNoFlags() { irq }: an edge-triggered, active-high ISA interrupt.
 *
 * @param irq 0..15
 * @returns the descriptor
 * @example
 * ```ts
 * import { irqNoFlags } from "./aml.ts";
 * irqNoFlags(4);
 * ```
 */
export function irqNoFlags(irq: number): Uint8Array {
  if (!Number.isInteger(irq) || irq < 0 || irq > 15) throw new RangeError(`Invalid ISA IRQ ${irq}`);
  const mask = 1 << irq;
  return new Uint8Array([0x22, mask & 0xff, mask >> 8]);
}

/** Address space resource types. */
const RT_MEMORY = 0;
const RT_IO = 1;
const RT_BUS = 2;
/** General flags: MinFixed | MaxFixed, positive decode, ResourceProducer. */
const GEN_FIXED_PRODUCER = 0x0c;

function addressSpace(
  size: 2 | 4 | 8,
  rtype: number,
  typeFlags: number,
  min: number | bigint,
  max: number | bigint,
): Uint8Array {
  const lo = BigInt(min);
  const hi = BigInt(max);
  if (hi < lo) throw new RangeError(`Resource range ends before it starts: ${min}..${max}`);
  const tag = size === 2 ? 0x88 : size === 4 ? 0x87 : 0x8a;
  const out = new Uint8Array(3 + 3 + 5 * size);
  const v = new DataView(out.buffer);
  out[0] = tag;
  v.setUint16(1, out.length - 3, true);
  out[3] = rtype;
  out[4] = GEN_FIXED_PRODUCER;
  out[5] = typeFlags;
  // granularity, min, max, translation, length
  const fields = [0n, lo, hi, 0n, hi - lo + 1n];
  fields.forEach((x, i) => {
    const at = 6 + i * size;
    const limit = (1n << BigInt(8 * size)) - 1n;
    if (x > limit) throw new RangeError(`Resource value 0x${x.toString(16)} too wide`);
    if (size === 2) v.setUint16(at, Number(x), true);
    else if (size === 4) v.setUint32(at, Number(x), true);
    else v.setBigUint64(at, x, true);
  });
  return out;
}

/**
 * WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, n).
 *
 * @param min first bus
 * @param max last bus
 * @returns the descriptor
 * @example
 * ```ts
 * import { wordBusNumber } from "./aml.ts";
 * wordBusNumber(0, 0);
 * ```
 */
export function wordBusNumber(min: number, max: number): Uint8Array {
  return addressSpace(2, RT_BUS, 0, min, max);
}

/**
 * WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, ...).
 *
 * @param min first port
 * @param max last port
 * @returns the descriptor
 * @example
 * ```ts
 * import { wordIo } from "./aml.ts";
 * wordIo(0x0d00, 0xffff);
 * ```
 */
export function wordIo(min: number, max: number): Uint8Array {
  return addressSpace(2, RT_IO, 0x03, min, max);
}

/** Options for memory windows. */
export interface MemoryWindowOptions {
  /** Cacheable (default NonCacheable). */
  readonly cacheable?: boolean;
  /** Read-only (default ReadWrite). */
  readonly readOnly?: boolean;
}

function memFlags(options: MemoryWindowOptions): number {
  return (options.readOnly ? 0 : 1) | (options.cacheable ? 0x02 : 0);
}

/**
 * DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, ...): a 32-bit window.
 *
 * @param min first address
 * @param max last address
 * @param options caching and access
 * @returns the descriptor
 * @example
 * ```ts
 * import { dwordMemory } from "./aml.ts";
 * dwordMemory(0xc0000000, 0xfebfffff);
 * ```
 */
export function dwordMemory(
  min: number,
  max: number,
  options: MemoryWindowOptions = {},
): Uint8Array {
  return addressSpace(4, RT_MEMORY, memFlags(options), min, max);
}

/**
 * QWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, ...): a 64-bit window.
 *
 * @param min first address
 * @param max last address
 * @param options caching and access
 * @returns the descriptor
 * @example
 * ```ts
 * import { qwordMemory } from "./aml.ts";
 * qwordMemory(0x80_0000_0000n, 0xff_ffff_ffffn);
 * ```
 */
export function qwordMemory(
  min: number | bigint,
  max: number | bigint,
  options: MemoryWindowOptions = {},
): Uint8Array {
  return addressSpace(8, RT_MEMORY, memFlags(options), min, max);
}
