/**
 * Where an initrd goes: as high as possible in usable RAM, page aligned,
 * above the kernel and below the limit the kernel reads from its header.
 *
 * @module
 */
import { E820_RAM } from "./boot_params.ts";
import type { E820Entry } from "./e820.ts";
import { KernelLoaderError } from "./kernel_loader_error.ts";
import { FOUR_GIB } from "./layout.ts";

/** Options for {@link placeInitrd}. */
export interface InitrdPlacementOptions {
  /** Lowest address: the end of the kernel's memory. */
  readonly minAddr: number;
  /** End (exclusive) the initrd must stay below (initrd_addr_max + 1). */
  readonly maxEnd: number;
  /** Whether RAM above 4 GiB may be used when nothing below fits. */
  readonly above4G?: boolean;
}

/**
 * Picks the highest page-aligned address for `size` bytes in usable RAM
 * between `minAddr` and min(`maxEnd`, 4 GiB), or above 4 GiB if allowed and
 * nothing below fits.
 *
 * @param map the e820 map
 * @param size initrd bytes
 * @param options bounds
 * @returns the guest address
 * @throws {KernelLoaderError} if it fits nowhere
 * @example
 * ```ts
 * import { placeInitrd } from "./initrd.ts";
 * const map = [{ addr: 0x100000, size: 0x3f00000, type: 1 }];
 * console.log(placeInitrd(map, 0x1000, { minAddr: 0x2000000, maxEnd: 0x80000000 }).toString(16));
 * ```
 */
export function placeInitrd(
  map: readonly E820Entry[],
  size: number,
  options: InitrdPlacementOptions,
): number {
  const limit = Math.min(options.maxEnd, FOUR_GIB);
  let best = -1;
  for (const e of map) {
    if (e.type !== E820_RAM) continue;
    const end = Math.min(e.addr + e.size, limit);
    const start = Math.floor((end - size) / 4096) * 4096;
    if (start >= e.addr && start >= options.minAddr && start > best) best = start;
  }
  if (best < 0 && options.above4G) {
    for (const e of map) {
      if (e.type !== E820_RAM || e.addr + e.size <= FOUR_GIB) continue;
      const start = Math.floor((e.addr + e.size - size) / 4096) * 4096;
      if (start >= Math.max(e.addr, FOUR_GIB, options.minAddr) && start > best) best = start;
    }
  }
  if (best < 0) {
    throw new KernelLoaderError(
      `Initrd too big: ${size} bytes do not fit in RAM between the kernel end 0x${
        options.minAddr.toString(16)
      } and 0x${limit.toString(16)}`,
    );
  }
  return best;
}
