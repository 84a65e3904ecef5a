/**
 * Typed guest-physical addresses with checked arithmetic.
 *
 * @module
 */

/**
 * A guest-physical address: a non-negative safe integer, branded.
 *
 * @example
 * ```ts
 * import { type Gpa, gpa } from "./guest_address.ts";
 * const zeroPage: Gpa = gpa(0x7000);
 * console.log(zeroPage);
 * ```
 */
export type Gpa = number & { readonly __gpa: unique symbol };

/**
 * Makes a Gpa from a number, checking it is a non-negative safe integer.
 *
 * @param n address
 * @returns the typed address
 * @example
 * ```ts
 * import { gpa } from "./guest_address.ts";
 * const a = gpa(0x1000);
 * ```
 */
export function gpa(n: number): Gpa {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`Invalid guest address ${n}`);
  }
  return n as Gpa;
}

/**
 * a + b, throwing RangeError on overflow past 2^53.
 *
 * @param a guest address
 * @param b offset (may be negative)
 * @returns the sum as a Gpa
 * @example
 * ```ts
 * import { checkedAdd, gpa } from "./guest_address.ts";
 * checkedAdd(gpa(0x1000), 0x10);
 * ```
 */
export function checkedAdd(a: Gpa, b: number): Gpa {
  const s = a + b;
  if (!Number.isSafeInteger(s) || s < 0) {
    throw new RangeError(`Guest address overflow: ${a} + ${b}`);
  }
  return s as Gpa;
}
