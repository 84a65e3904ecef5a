/**
 * ACPI tables for a PC-like guest, built into guest RAM: RSDP (revision 2),
 * XSDT/RSDT, FADT (revision 6) + FACS, DSDT (written with a small AML
 * encoder) and MADT. The PM1a blocks, SCI and reset register the FADT
 * declares are exported as constants for the device model implementing them.
 *
 * ```ts ignore
 * import { buildAcpiTables } from "./mod.ts";
 * const acpi = buildAcpiTables(mem, { cpus: 4 });
 * // acpi.rsdp -> boot_params.acpi_rsdp_addr (loadBzImage's rsdp option)
 * ```
 *
 * @module
 */
export * as aml from "./aml.ts";
export * from "./dsdt.ts";
export * from "./fadt.ts";
export * from "./madt.ts";
export * from "./sdt.ts";
export * from "./tables.ts";
