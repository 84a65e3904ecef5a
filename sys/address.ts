/**
 * The host address of a buffer's bytes, for passing to libc as an integer
 * (the `i64`/`usize` parameters of raw syscalls, struct fields).
 *
 * @module
 */

/**
 * The address of the first byte of a view. The caller keeps the buffer
 * alive while the kernel or C code uses the address.
 *
 * @param view any typed array or DataView
 * @returns its address
 * @example
 * ```ts
 * import { viewAddress } from "./address.ts";
 * console.log(viewAddress(new Uint8Array(8)) !== 0n);
 * ```
 */
export function viewAddress(view: ArrayBufferView): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(view)));
}
