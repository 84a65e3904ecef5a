/**
 * The MADT ("APIC"): one enabled local APIC per vCPU (APIC id = index), the
 * IOAPIC at 0xfec00000 with GSI base 0, ISA overrides for the PIT
 * (IRQ0 -> GSI2) and the level-triggered SCI, and LINT1 as NMI.
 *
 * @module
 */
import { ByteWriter } from "./_bytes.ts";
import { buildTable } from "./sdt.ts";
import { SCI_INT } from "./fadt.ts";

/** The local APIC's MMIO base. */
export const LAPIC_ADDR = 0xfee0_0000;
/** The IOAPIC's MMIO base. */
export const IOAPIC_ADDR = 0xfec0_0000;
/** Most vCPUs with xAPIC ids (0..254; 255 is broadcast). */
export const MAX_XAPIC_CPUS = 255;

/** MADT flag: the system also has dual 8259 PICs. */
export const ACPI_MADT_PCAT_COMPAT = 1;
/** MADT subtable types. */
export const ACPI_MADT_TYPE_LOCAL_APIC = 0;
/** IOAPIC subtable. */
export const ACPI_MADT_TYPE_IO_APIC = 1;
/** Interrupt source override subtable. */
export const ACPI_MADT_TYPE_INTERRUPT_OVERRIDE = 2;
/** Local APIC NMI subtable. */
export const ACPI_MADT_TYPE_LOCAL_APIC_NMI = 4;
/** Local APIC flag: enabled. */
export const ACPI_MADT_ENABLED = 1;
/** MPS INTI flags: active high. */
export const ACPI_MADT_POLARITY_ACTIVE_HIGH = 1;
/** MPS INTI flags: level triggered. */
export const ACPI_MADT_TRIGGER_LEVEL = 3 << 2;

/** Options for {@link buildMadt}. */
export interface MadtOptions {
  /** vCPUs: 1..255. */
  readonly cpus: number;
  /** The IOAPIC's id (default 0, as QEMU and Firecracker use). */
  readonly ioapicId?: number;
}

/**
 * Builds the MADT.
 *
 * @param options vCPU count and IOAPIC id
 * @returns the table
 * @example
 * ```ts
 * import { buildMadt } from "./madt.ts";
 * console.log(buildMadt({ cpus: 2 }).length);
 * ```
 */
export function buildMadt(options: MadtOptions): Uint8Array {
  const { cpus } = options;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MAX_XAPIC_CPUS) {
    throw new RangeError(`Invalid vCPU count ${cpus}: the MADT takes 1 to ${MAX_XAPIC_CPUS}`);
  }
  const w = new ByteWriter().u32(LAPIC_ADDR).u32(ACPI_MADT_PCAT_COMPAT);
  for (let i = 0; i < cpus; i++) {
    w.u8(ACPI_MADT_TYPE_LOCAL_APIC).u8(8).u8(i).u8(i).u32(ACPI_MADT_ENABLED);
  }
  w.u8(ACPI_MADT_TYPE_IO_APIC).u8(12).u8(options.ioapicId ?? 0).u8(0).u32(IOAPIC_ADDR).u32(0);
  // The PIT's IRQ0 is wired to IOAPIC pin 2; flags 0: bus-conforming.
  w.u8(ACPI_MADT_TYPE_INTERRUPT_OVERRIDE).u8(10).u8(0).u8(0).u32(2).u16(0);
  // The SCI: level-triggered, active high.
  w.u8(ACPI_MADT_TYPE_INTERRUPT_OVERRIDE).u8(10).u8(0).u8(SCI_INT).u32(SCI_INT)
    .u16(ACPI_MADT_POLARITY_ACTIVE_HIGH | ACPI_MADT_TRIGGER_LEVEL);
  // LINT1 is NMI on every processor (UID 0xff).
  w.u8(ACPI_MADT_TYPE_LOCAL_APIC_NMI).u8(6).u8(0xff).u16(0).u8(1);
  return buildTable("APIC", 5, w.toBytes());
}
