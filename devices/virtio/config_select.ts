/**
 * Device configuration the driver writes to: a few selector bytes at the
 * start choose which page of read-only bytes shows in a window after them
 * (virtio-input's `select`/`subsel` and its `size` + union, spec 5.8.4).
 * Plain data, so every thread's instance of a function (the vCPU Workers
 * that take the config writes) answers the same way with no call back to
 * the device model: the driver writes the selector and reads the window
 * at once, in the same vCPU exit sequence.
 *
 * @module
 */

/** Selector bytes and the pages they choose. */
export interface VirtioConfigSelect {
  /** How many bytes at offset 0 the driver may write (at most 4). */
  selectorBytes: number;
  /**
   * The window's contents for each selector value (the selector bytes read
   * as a little-endian number). Pages start at offset `selectorBytes`; an
   * absent value shows zeros.
   */
  pages: Map<number, Uint8Array>;
}

/**
 * Applies a driver write to device config bytes: stores the part that
 * falls on the selector, then fills the window from the chosen page.
 * Writes elsewhere are ignored (the rest of the config is read-only).
 *
 * @param select the device's selector and pages
 * @param config the device config bytes (shared, under the big lock)
 * @param offset the write's offset into the device config
 * @param data the bytes written
 * @returns whether the write touched the selector
 * @example
 * ```ts
 * import { applyConfigSelect } from "./config_select.ts";
 * const config = new Uint8Array(8);
 * const select = { selectorBytes: 2, pages: new Map([[0x0001, new Uint8Array([3, 0, 7])]]) };
 * applyConfigSelect(select, config, 0, new Uint8Array([1, 0]));
 * console.log(config[2], config[4]); // 3 7
 * ```
 */
export function applyConfigSelect(
  select: VirtioConfigSelect,
  config: Uint8Array,
  offset: number,
  data: Uint8Array,
): boolean {
  const n = select.selectorBytes;
  if (offset >= n || offset < 0) return false;
  for (let i = 0; i < data.length && offset + i < n; i++) config[offset + i] = data[i];
  let key = 0;
  for (let i = n - 1; i >= 0; i--) key = key * 256 + config[i];
  const page = select.pages.get(key);
  const window = config.subarray(n);
  window.fill(0);
  if (page) window.set(page.subarray(0, Math.min(page.length, window.length)));
  return true;
}
