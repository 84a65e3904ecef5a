/**
 * The FADT (revision 6) and FACS: a PC-compatible, non-hardware-reduced
 * platform with the PM1a event/control blocks at fixed I/O ports, no PM
 * timer, SCI on IRQ 9 and the reset register at 0xcf9. The device model that
 * implements those ports imports these constants.
 *
 * @module
 */
import { ByteWriter } from "./_bytes.ts";
import { ACPI_HEADER_SIZE, buildTable } from "./sdt.ts";

/** PM1a event block (PM1_STS at +0, PM1_EN at +2). */
export const PM1A_EVT_BLK = 0x600;
/** PM1a event block length. */
export const PM1_EVT_LEN = 4;
/** PM1a control block (SCI_EN, SLP_TYP, SLP_EN). */
export const PM1A_CNT_BLK = 0x604;
/** PM1a control block length. */
export const PM1_CNT_LEN = 2;
/** The SCI's ISA IRQ (and GSI). */
export const SCI_INT = 9;
/** The reset register: I/O port 0xcf9. */
export const RESET_REG_PORT = 0xcf9;
/** The value written to the reset register to reset. */
export const RESET_VALUE = 0x06;
/** PM1_CNT.SLP_TYP field shift (bits 10-12). */
export const SLP_TYP_SHIFT = 10;
/** PM1_CNT.SLP_EN (bit 13): write 1 to enter the SLP_TYP state. */
export const SLP_EN = 1 << 13;
/** PM1_CNT.SCI_EN (bit 0). */
export const SCI_EN = 1 << 0;
/** The SLP_TYP value the DSDT's \_S5 package gives for soft-off. */
export const SLP_TYP_S5 = 5;

/** FADT flags (ACPI 6.x table 5.10). */
export const ACPI_FADT_WBINVD = 1 << 0;
/** C1 supported on all processors. */
export const ACPI_FADT_C1_SUPPORTED = 1 << 2;
/** No fixed power button. */
export const ACPI_FADT_POWER_BUTTON = 1 << 4;
/** No fixed sleep button. */
export const ACPI_FADT_SLEEP_BUTTON = 1 << 5;
/** RESET_REG is supported. */
export const ACPI_FADT_RESET_REGISTER = 1 << 10;
/** Hardware-reduced ACPI (not set: we have PM1 blocks). */
export const ACPI_FADT_HW_REDUCED = 1 << 20;

/** IAPC_BOOT_ARCH: legacy ISA devices present. */
export const ACPI_FADT_LEGACY_DEVICES = 1 << 0;
/** IAPC_BOOT_ARCH: an 8042 keyboard controller is present. */
export const ACPI_FADT_8042 = 1 << 1;
/** IAPC_BOOT_ARCH: VGA not present. */
export const ACPI_FADT_NO_VGA = 1 << 2;

/** sizeof(struct acpi_table_fadt) for revision 6. */
export const FADT_SIZE = 276;
/** sizeof(struct acpi_table_facs). */
export const FACS_SIZE = 64;

/** FADT field offsets used here (ACPICA actbl.h struct acpi_table_fadt). */
export const FADT = {
  facs: 36,
  dsdt: 40,
  preferred_profile: 45,
  sci_interrupt: 46,
  smi_command: 48,
  pm1a_event_block: 56,
  pm1a_control_block: 64,
  pm1_event_length: 88,
  pm1_control_length: 89,
  boot_flags: 109,
  flags: 112,
  reset_register: 116,
  reset_value: 128,
  minor_revision: 131,
  Xdsdt: 140,
  Xpm1a_event_block: 148,
  Xpm1a_control_block: 172,
} as const;

/** Generic Address Structure space ids. */
const ACPI_ADR_SPACE_SYSTEM_IO = 1;

/** Options for {@link buildFadt}. */
export interface FadtOptions {
  /** FACS address (below 4 GiB). */
  readonly facs: number;
  /** DSDT address. */
  readonly dsdt: number;
  /** IAPC_BOOT_ARCH flags (default legacy devices + 8042). */
  readonly bootArch?: number;
}

function gas(w: ByteWriter, port: number, bytes: number, accessSize: number): void {
  w.u8(ACPI_ADR_SPACE_SYSTEM_IO).u8(bytes * 8).u8(0).u8(accessSize).u64(port);
}

/**
 * Builds the FADT, revision 6.
 *
 * @param options FACS/DSDT addresses and boot architecture flags
 * @returns the table
 * @example
 * ```ts
 * import { buildFadt } from "./fadt.ts";
 * const fadt = buildFadt({ facs: 0xe0040, dsdt: 0xe0080 });
 * console.log(fadt.length); // 276
 * ```
 */
export function buildFadt(options: FadtOptions): Uint8Array {
  const w = new ByteWriter();
  w.u32(options.facs); // FIRMWARE_CTRL
  w.u32(options.dsdt); // DSDT
  w.u8(0); // reserved
  w.u8(0); // Preferred_PM_Profile: unspecified
  w.u16(SCI_INT);
  w.u32(0); // SMI_CMD: none, ACPI mode is always on
  w.u8(0).u8(0).u8(0).u8(0); // ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
  w.u32(PM1A_EVT_BLK);
  w.u32(0); // PM1b_EVT_BLK
  w.u32(PM1A_CNT_BLK);
  w.u32(0); // PM1b_CNT_BLK
  w.u32(0); // PM2_CNT_BLK
  w.u32(0); // PM_TMR_BLK: none
  w.u32(0).u32(0); // GPE0_BLK, GPE1_BLK
  w.u8(PM1_EVT_LEN).u8(PM1_CNT_LEN).u8(0).u8(0); // PM1_EVT, PM1_CNT, PM2_CNT, PM_TMR lengths
  w.u8(0).u8(0).u8(0).u8(0); // GPE0_BLK_LEN, GPE1_BLK_LEN, GPE1_BASE, CST_CNT
  w.u16(0x65); // P_LVL2_LAT > 100: C2 unsupported
  w.u16(0x3e9); // P_LVL3_LAT > 1000: C3 unsupported
  w.u16(0).u16(0); // FLUSH_SIZE, FLUSH_STRIDE
  w.u8(0).u8(0); // DUTY_OFFSET, DUTY_WIDTH
  w.u8(0).u8(0).u8(0); // DAY_ALRM, MON_ALRM, CENTURY
  w.u16(options.bootArch ?? (ACPI_FADT_LEGACY_DEVICES | ACPI_FADT_8042));
  w.u8(0); // reserved
  // A fixed power button (POWER_BUTTON clear): PWRBTN_STS in PM1 and the
  // SCI, which Linux's button driver turns into a KEY_POWER for acpid. No
  // sleep button.
  w.u32(
    ACPI_FADT_WBINVD | ACPI_FADT_C1_SUPPORTED | ACPI_FADT_SLEEP_BUTTON | ACPI_FADT_RESET_REGISTER,
  );
  gas(w, RESET_REG_PORT, 1, 1); // RESET_REG: byte access
  w.u8(RESET_VALUE);
  w.u16(0); // ARM_BOOT_ARCH
  w.u8(0); // FADT minor version
  w.u64(0); // X_FIRMWARE_CTRL: the 32-bit FIRMWARE_CTRL is used
  w.u64(options.dsdt); // X_DSDT
  gas(w, PM1A_EVT_BLK, PM1_EVT_LEN, 0); // X_PM1a_EVT_BLK
  w.zeros(12); // X_PM1b_EVT_BLK
  gas(w, PM1A_CNT_BLK, PM1_CNT_LEN, 0); // X_PM1a_CNT_BLK
  w.zeros(12 * 5); // X_PM1b_CNT, X_PM2_CNT, X_PM_TMR, X_GPE0, X_GPE1
  w.zeros(12 * 2); // SLEEP_CONTROL_REG, SLEEP_STATUS_REG (hardware-reduced only)
  w.ascii("DENOVMM\0", 8, 0); // Hypervisor Vendor Identity
  const t = buildTable("FACP", 6, w.toBytes());
  if (t.length !== FADT_SIZE || w.length !== FADT_SIZE - ACPI_HEADER_SIZE) {
    throw new Error(`FADT is ${t.length} bytes, expected ${FADT_SIZE}`);
  }
  return t;
}

/**
 * Builds the FACS (version 2): no hardware signature, no waking vector, no
 * global lock in use. It has no checksum and must be 64-byte aligned.
 *
 * @returns the 64 bytes
 * @example
 * ```ts
 * import { buildFacs } from "./fadt.ts";
 * console.log(buildFacs().length); // 64
 * ```
 */
export function buildFacs(): Uint8Array {
  return new ByteWriter()
    .ascii("FACS", 4)
    .u32(FACS_SIZE)
    .u32(0) // hardware signature
    .u32(0) // firmware waking vector
    .u32(0) // global lock
    .u32(0) // flags
    .u64(0) // X firmware waking vector
    .u8(2) // version
    .zeros(3)
    .u32(0) // OSPM flags
    .zeros(24)
    .toBytes();
}
