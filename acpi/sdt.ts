/**
 * The system description table header every ACPI table but the RSDP and
 * FACS starts with, its checksum, and the root tables (RSDP, XSDT, RSDT).
 *
 * @module
 */
import { ByteWriter, checksum } from "./_bytes.ts";

/** sizeof(struct acpi_table_header). */
export const ACPI_HEADER_SIZE = 36;
/** OEM ID in every table. */
export const ACPI_OEM_ID = "DENOVM";
/** OEM table ID in every table. */
export const ACPI_OEM_TABLE_ID = "DENOVMM ";
/** Creator ID in every table. */
export const ACPI_CREATOR_ID = "DNVM";

/**
 * Builds a table: the 36-byte header (signature, length, revision, checksum,
 * OEM ids, creator) followed by `body`, checksummed.
 *
 * @param signature four characters, e.g. "APIC"
 * @param revision table revision
 * @param body everything after the header
 * @returns the complete table
 * @example
 * ```ts
 * import { buildTable } from "./sdt.ts";
 * const t = buildTable("SSDT", 2, new Uint8Array(0));
 * console.log(t.length); // 36
 * ```
 */
export function buildTable(signature: string, revision: number, body: Uint8Array): Uint8Array {
  if (signature.length !== 4) throw new RangeError(`Invalid ACPI signature: ${signature}`);
  const w = new ByteWriter()
    .ascii(signature, 4)
    .u32(ACPI_HEADER_SIZE + body.length)
    .u8(revision)
    .u8(0) // checksum
    .ascii(ACPI_OEM_ID, 6)
    .ascii(ACPI_OEM_TABLE_ID, 8)
    .u32(1) // OEM revision
    .ascii(ACPI_CREATOR_ID, 4)
    .u32(1) // creator revision
    .bytes(body);
  const t = w.toBytes();
  t[9] = checksum(t);
  return t;
}

/**
 * The XSDT: 64-bit pointers to the other tables (the FADT first).
 *
 * @param tables table addresses
 * @returns the table
 * @example
 * ```ts
 * import { buildXsdt } from "./sdt.ts";
 * buildXsdt([0xe0100, 0xe0200]);
 * ```
 */
export function buildXsdt(tables: readonly number[]): Uint8Array {
  const w = new ByteWriter();
  for (const t of tables) w.u64(t);
  return buildTable("XSDT", 1, w.toBytes());
}

/**
 * The RSDT: the same pointers, 32-bit, for ACPI 1.0 readers.
 *
 * @param tables table addresses below 4 GiB
 * @returns the table
 * @example
 * ```ts
 * import { buildRsdt } from "./sdt.ts";
 * buildRsdt([0xe0100, 0xe0200]);
 * ```
 */
export function buildRsdt(tables: readonly number[]): Uint8Array {
  const w = new ByteWriter();
  for (const t of tables) w.u32(t);
  return buildTable("RSDT", 1, w.toBytes());
}

/** sizeof(struct acpi_table_rsdp) for revision 2. */
export const RSDP_SIZE = 36;

/**
 * The RSDP, revision 2: "RSD PTR ", the ACPI 1.0 checksum over the first 20
 * bytes, and the extended checksum over all 36.
 *
 * @param xsdt XSDT address
 * @param rsdt RSDT address (0 for none)
 * @returns the 36 bytes
 * @example
 * ```ts
 * import { buildRsdp } from "./sdt.ts";
 * buildRsdp(0xe0040, 0xe0080);
 * ```
 */
export function buildRsdp(xsdt: number, rsdt: number): Uint8Array {
  const t = new ByteWriter()
    .ascii("RSD PTR ", 8)
    .u8(0) // checksum
    .ascii(ACPI_OEM_ID, 6)
    .u8(2) // revision
    .u32(rsdt)
    .u32(RSDP_SIZE)
    .u64(xsdt)
    .u8(0) // extended checksum
    .zeros(3)
    .toBytes();
  t[8] = checksum(t.subarray(0, 20));
  t[32] = checksum(t);
  return t;
}
