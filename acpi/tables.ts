/**
 * All the ACPI tables, laid out in the BIOS area (0xe0000..0xfffff) with the
 * RSDP first, where Linux's legacy scan finds it even without
 * boot_params.acpi_rsdp_addr.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import { buildDsdt, type DsdtOptions } from "./dsdt.ts";
import { buildFacs, buildFadt, FADT_SIZE, type FadtOptions } from "./fadt.ts";
import { buildMadt, type MadtOptions } from "./madt.ts";
import { ACPI_HEADER_SIZE, buildRsdp, buildRsdt, buildXsdt, RSDP_SIZE } from "./sdt.ts";

/** Default base: the start of the BIOS area Linux scans for the RSDP. */
export const ACPI_TABLES_START = 0xe0000;
/** End (exclusive) of the area the tables may use. */
export const ACPI_TABLES_END = 0x100000;

/** Options for {@link buildAcpiTables}. */
export interface AcpiOptions extends MadtOptions, DsdtOptions {
  /** Where the RSDP goes; the other tables follow (default 0xe0000, 16-byte aligned). */
  readonly base?: number;
  /** End (exclusive) the tables must stay below (default 0x100000). */
  readonly limit?: number;
  /** IAPC_BOOT_ARCH for the FADT. */
  readonly bootArch?: FadtOptions["bootArch"];
}

/** Where a table went. */
export interface AcpiTablePlacement {
  /** Guest address. */
  readonly addr: number;
  /** Bytes. */
  readonly size: number;
}

/** What {@link buildAcpiTables} wrote. */
export interface AcpiTables {
  /** The RSDP address: for boot_params.acpi_rsdp_addr or hvm_start_info.rsdp_paddr. */
  readonly rsdp: number;
  /** Each table by signature (RSDP, FACS, DSDT, FACP, APIC, XSDT, RSDT). */
  readonly tables: Readonly<Record<string, AcpiTablePlacement>>;
  /** The whole range written, 16-byte aligned at both ends: reserve it in e820. */
  readonly range: AcpiTablePlacement;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * Builds the RSDP, XSDT, RSDT, FADT, FACS, DSDT and MADT and writes them
 * into guest RAM from `base` upward, every checksum correct.
 *
 * @param mem guest RAM
 * @param options vCPUs, IOAPIC id, devices, placement
 * @returns the RSDP address and each table's placement
 * @throws {RangeError} if the tables do not fit below `limit` or outside RAM
 * @example
 * ```ts
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { buildAcpiTables } from "./tables.ts";
 * const mem = GuestMemory.fromBuffer(new ArrayBuffer(1 << 20));
 * const acpi = buildAcpiTables(mem, { cpus: 2 });
 * console.log(acpi.rsdp.toString(16)); // e0000
 * ```
 */
export function buildAcpiTables(mem: GuestMemory, options: AcpiOptions): AcpiTables {
  const base = options.base ?? ACPI_TABLES_START;
  const limit = options.limit ?? ACPI_TABLES_END;
  if (!Number.isSafeInteger(base) || base % 16 !== 0 || base + RSDP_SIZE > 0x1_0000_0000) {
    throw new RangeError(`Invalid ACPI base 0x${base.toString(16)}: 16-byte aligned below 4 GiB`);
  }
  const dsdt = buildDsdt(options);
  const madt = buildMadt(options);
  const facs = buildFacs();
  const tables: Record<string, AcpiTablePlacement> = {};
  let at = base;
  const place = (sig: string, size: number, align: number) => {
    at = alignUp(at, align);
    tables[sig] = { addr: at, size };
    at += size;
    return tables[sig].addr;
  };
  place("RSDP", RSDP_SIZE, 16);
  const facsAddr = place("FACS", facs.length, 64);
  const dsdtAddr = place("DSDT", dsdt.length, 16);
  const fadtAddr = place("FACP", FADT_SIZE, 16);
  const madtAddr = place("APIC", madt.length, 16);
  const xsdtAddr = place("XSDT", ACPI_HEADER_SIZE + 2 * 8, 16);
  const rsdtAddr = place("RSDT", ACPI_HEADER_SIZE + 2 * 4, 16);
  const end = alignUp(at, 16);
  if (end > limit || end > 0x1_0000_0000) {
    throw new RangeError(
      `ACPI tables need 0x${(end - base).toString(16)} bytes and do not fit below 0x${
        limit.toString(16)
      }`,
    );
  }
  if (!mem.contains(base, end - base)) {
    throw new RangeError(`ACPI table area 0x${base.toString(16)} is not guest RAM`);
  }
  const fadt = buildFadt({ facs: facsAddr, dsdt: dsdtAddr, bootArch: options.bootArch });
  const blobs: [number, Uint8Array][] = [
    [tables.RSDP.addr, buildRsdp(xsdtAddr, rsdtAddr)],
    [facsAddr, facs],
    [dsdtAddr, dsdt],
    [fadtAddr, fadt],
    [madtAddr, madt],
    [xsdtAddr, buildXsdt([fadtAddr, madtAddr])],
    [rsdtAddr, buildRsdt([fadtAddr, madtAddr])],
  ];
  mem.fill(base, end - base, 0);
  for (const [addr, bytes] of blobs) mem.write(addr, bytes);
  return { rsdp: tables.RSDP.addr, tables, range: { addr: base, size: end - base } };
}
