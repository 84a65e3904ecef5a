/**
 * QEMU-style sizes: `256M`, `1G`, `1.5G`, `512k`; a bare number is MiB, as
 * with `qemu -m`.
 *
 * @module
 */

const UNITS: Record<string, number> = {
  "": 1024 * 1024,
  b: 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/**
 * Parses a size.
 *
 * @param text e.g. `256M`, `1G`, `2048`
 * @param bareUnit multiplier for a number without a suffix (default MiB)
 * @returns bytes, or undefined when text is not a size
 * @example
 * ```ts
 * import { parseSize } from "./size.ts";
 * console.log(parseSize("1G")); // 1073741824
 * ```
 */
export function parseSize(text: string, bareUnit = UNITS[""]): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = m[2] === "" ? bareUnit : UNITS[m[2].toLowerCase()];
  const bytes = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/**
 * Formats bytes the way sizes are typed (`256M`, `1G`).
 *
 * @param bytes a byte count
 * @returns the shortest exact form
 */
export function formatSize(bytes: number): string {
  for (
    const [u, n] of [["T", 1024 ** 4], ["G", 1024 ** 3], ["M", 1024 ** 2], ["K", 1024]] as const
  ) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${u}`;
  }
  return `${bytes}B`;
}
