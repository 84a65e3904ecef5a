/**
 * The e820 memory map a PC firmware would report for our guest RAM layout.
 *
 * The 32-bit PCI hole (3 GiB .. 4 GiB) is simply absent from the map, as on
 * QEMU and Firecracker: marking it reserved would make Linux clip the PCI host
 * bridge window that the DSDT offers there.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import { E820_MAX_ENTRIES_ZEROPAGE, E820_RAM, E820_RESERVED } from "./boot_params.ts";
import { ACPI_AREA_END, ACPI_AREA_START, EBDA_START } from "./layout.ts";

/** One e820 range. */
export interface E820Entry {
  /** Guest-physical start. */
  readonly addr: number;
  /** Bytes. */
  readonly size: number;
  /** E820_RAM, E820_RESERVED, E820_ACPI, ... */
  readonly type: number;
}

/** Options for {@link buildE820}. */
export interface E820Options {
  /**
   * Ranges carved out of RAM with their own type (ACPI tables placed outside
   * the BIOS area, firmware data). They must lie inside guest RAM.
   */
  readonly reserved?: readonly E820Entry[];
}

interface Range {
  start: number;
  end: number;
  type: number;
}

/**
 * Builds the e820 map for guest RAM: usable RAM below the EBDA (0x9fc00),
 * the EBDA reserved, the VGA hole absent, the BIOS/ACPI area
 * 0xe0000..0x100000 reserved, RAM from 1 MiB up to the end of each region,
 * and any extra reserved ranges. Sorted, adjacent ranges of a type merged.
 *
 * @param mem guest RAM (its layout's regions are the RAM)
 * @param options extra reserved ranges
 * @returns at most E820_MAX_ENTRIES_ZEROPAGE entries
 * @example
 * ```ts
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { buildE820 } from "./e820.ts";
 * const map = buildE820(GuestMemory.fromBuffer(new ArrayBuffer(4 << 20)));
 * console.log(map.map((e) => [e.addr.toString(16), e.size.toString(16), e.type]));
 * ```
 */
export function buildE820(mem: GuestMemory, options: E820Options = {}): E820Entry[] {
  let ranges: Range[] = [];
  for (const r of mem.layout.regions) {
    ranges.push({ start: r.guestAddr, end: r.guestAddr + r.size, type: E820_RAM });
  }
  const ramHas = (start: number, end: number) =>
    ranges.some((r) => r.start <= start && end <= r.end);
  const carve: Range[] = [];
  // The EBDA and the BIOS/ACPI area are reserved where RAM backs them; the
  // VGA/ROM hole between them is left out of the map.
  if (ramHas(EBDA_START, ACPI_AREA_START)) {
    carve.push({ start: EBDA_START, end: ACPI_AREA_START, type: 0 });
  }
  const reservedOut: Range[] = [];
  if (ramHas(EBDA_START, 0xa0000)) {
    reservedOut.push({ start: EBDA_START, end: 0xa0000, type: E820_RESERVED });
  }
  if (ramHas(ACPI_AREA_START, ACPI_AREA_END)) {
    carve.push({ start: ACPI_AREA_START, end: ACPI_AREA_END, type: 0 });
    reservedOut.push({ start: ACPI_AREA_START, end: ACPI_AREA_END, type: E820_RESERVED });
  }
  for (const e of options.reserved ?? []) {
    if (!Number.isSafeInteger(e.addr) || !Number.isSafeInteger(e.size) || e.size <= 0) {
      throw new RangeError(`Invalid e820 range 0x${e.addr.toString(16)} (+${e.size})`);
    }
    const end = e.addr + e.size;
    if (!ramHas(e.addr, end)) {
      throw new RangeError(
        `Reserved range 0x${e.addr.toString(16)}..0x${end.toString(16)} is not in guest RAM`,
      );
    }
    // Inside the already reserved BIOS area: nothing to add.
    if (e.addr >= ACPI_AREA_START && end <= ACPI_AREA_END && e.type === E820_RESERVED) continue;
    carve.push({ start: e.addr, end, type: 0 });
    reservedOut.push({ start: e.addr, end, type: e.type });
  }
  for (const c of carve) ranges = subtract(ranges, c);
  // Overlapping reserved ranges would be ambiguous: the later one wins by
  // being subtracted from the earlier ones.
  let extra: Range[] = [];
  for (const r of reservedOut) {
    extra = subtract(extra, r);
    extra.push(r);
  }
  const all = [...ranges, ...extra].sort((a, b) => a.start - b.start);
  const out: E820Entry[] = [];
  for (const r of all) {
    const last = out[out.length - 1];
    if (last && last.type === r.type && last.addr + last.size === r.start) {
      out[out.length - 1] = { addr: last.addr, size: r.end - last.addr, type: r.type };
    } else {
      out.push({ addr: r.start, size: r.end - r.start, type: r.type });
    }
  }
  if (out.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new RangeError(
      `Too many e820 entries: ${out.length}, the zero page holds ${E820_MAX_ENTRIES_ZEROPAGE}`,
    );
  }
  return out;
}

/** ranges minus [cut.start, cut.end). */
function subtract(ranges: Range[], cut: Range): Range[] {
  const out: Range[] = [];
  for (const r of ranges) {
    if (cut.end <= r.start || cut.start >= r.end) {
      out.push(r);
      continue;
    }
    if (r.start < cut.start) out.push({ start: r.start, end: cut.start, type: r.type });
    if (cut.end < r.end) out.push({ start: cut.end, end: r.end, type: r.type });
  }
  return out;
}

/**
 * The highest end address of usable RAM below a limit that is contiguous
 * from `from`: where a loader may place data above `from`.
 *
 * @param map an e820 map
 * @param from start address that must be usable RAM
 * @returns the end (exclusive) of the usable range holding `from`, or `from` if none
 * @example
 * ```ts
 * import { usableEnd } from "./e820.ts";
 * console.log(usableEnd([{ addr: 0x100000, size: 0x100000, type: 1 }], 0x100000));
 * ```
 */
export function usableEnd(map: readonly E820Entry[], from: number): number {
  for (const e of map) {
    if (e.type === E820_RAM && e.addr <= from && from < e.addr + e.size) return e.addr + e.size;
  }
  return from;
}
