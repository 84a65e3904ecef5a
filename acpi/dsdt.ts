/**
 * The DSDT: \_S5 for soft-off through PM1a_CNT, the PCI root bridge
 * (PNP0A03, bus 0, config ports 0xcf8, I/O and the 32-bit MMIO window below
 * the IOAPIC), and the 16550 serial ports (PNP0501).
 *
 * @module
 */
import * as aml from "./aml.ts";
import { SLP_TYP_S5 } from "./fadt.ts";
import { buildTable } from "./sdt.ts";

/** Start of the PCI 32-bit MMIO window the root bridge decodes. */
export const PCI_MMIO32_START = 0xc000_0000;
/** End (inclusive) of that window: just below the IOAPIC. */
export const PCI_MMIO32_END = 0xfebf_ffff;
/** The PCI configuration mechanism #1 ports. */
export const PCI_CONFIG_PORT = 0xcf8;

/** A 16550 UART to describe. */
export interface SerialPortInfo {
  /** I/O base, e.g. 0x3f8. */
  readonly port: number;
  /** ISA IRQ, e.g. 4. */
  readonly irq: number;
}

/** One PCI interrupt route: device (slot) and pin to an IOAPIC GSI. */
export interface PciIrqRoute {
  /** PCI device number on bus 0, 0..31. */
  readonly slot: number;
  /** Interrupt pin: 0 = INTA .. 3 = INTD. */
  readonly pin: number;
  /** The GSI the pin is wired to (level-triggered, active-low per PCI). */
  readonly gsi: number;
}

/** Options for {@link buildDsdt}. */
export interface DsdtOptions {
  /** Serial ports, COM1 first (default: COM1 at 0x3f8, IRQ 4). */
  readonly serial?: readonly SerialPortInfo[];
  /** Whether to describe the PCI root bridge (default true). */
  readonly pci?: boolean;
  /** The root bridge's _PRT: how INTx pins reach GSIs (left out if empty). */
  readonly pciIrqRoutes?: readonly PciIrqRoute[];
  /** A 64-bit MMIO window for the root bridge, if any. */
  readonly pciMmio64?: { readonly start: number | bigint; readonly end: number | bigint };
}

/**
 * The DSDT's AML body (without the table header), for tests and SSDT reuse.
 *
 * @param options devices to describe
 * @returns the AML term list
 * @example
 * ```ts
 * import { dsdtAml } from "./dsdt.ts";
 * console.log(dsdtAml().length);
 * ```
 */
export function dsdtAml(options: DsdtOptions = {}): aml.Aml {
  const devices: aml.Aml[] = [];
  if (options.pci ?? true) {
    const windows = [
      aml.wordBusNumber(0, 0),
      aml.ioPort(PCI_CONFIG_PORT, PCI_CONFIG_PORT, 1, 8),
      aml.wordIo(0x0000, PCI_CONFIG_PORT - 1),
      aml.wordIo(0x0d00, 0xffff),
      aml.dwordMemory(PCI_MMIO32_START, PCI_MMIO32_END),
    ];
    if (options.pciMmio64) {
      windows.push(aml.qwordMemory(options.pciMmio64.start, options.pciMmio64.end));
    }
    const pci = [
      aml.name("_HID", aml.eisaId("PNP0A03")),
      aml.name("_UID", aml.integer(0)),
      aml.name("_CRS", aml.resourceTemplate(...windows)),
    ];
    const routes = options.pciIrqRoutes ?? [];
    if (routes.length > 0) pci.push(aml.name("_PRT", prt(routes)));
    devices.push(aml.device("PCI0", ...pci));
  }
  const serial = options.serial ?? [{ port: 0x3f8, irq: 4 }];
  serial.forEach((s, i) => {
    devices.push(aml.device(
      `COM${i + 1}`,
      aml.name("_HID", aml.eisaId("PNP0501")),
      aml.name("_UID", aml.integer(i + 1)),
      aml.name(
        "_CRS",
        aml.resourceTemplate(aml.ioPort(s.port, s.port, 0, 8), aml.irqNoFlags(s.irq)),
      ),
    ));
  });
  return aml.concat(
    // SLP_TYPa, SLP_TYPb, reserved, reserved.
    aml.name(
      "\\_S5",
      aml.pkg(aml.integer(SLP_TYP_S5), aml.integer(SLP_TYP_S5), aml.integer(0), aml.integer(0)),
    ),
    aml.scope("\\_SB", ...devices),
  );
}

/** Package of Package { address (slot << 16 | 0xffff), pin, source 0, GSI }. */
function prt(routes: readonly PciIrqRoute[]): aml.Aml {
  return aml.pkg(
    ...routes.map((r) => {
      if (!Number.isInteger(r.slot) || r.slot < 0 || r.slot > 31) {
        throw new RangeError(`Invalid PCI slot ${r.slot}`);
      }
      if (!Number.isInteger(r.pin) || r.pin < 0 || r.pin > 3) {
        throw new RangeError(`Invalid PCI interrupt pin ${r.pin}`);
      }
      return aml.pkg(
        aml.integer(r.slot * 0x10000 + 0xffff),
        aml.integer(r.pin),
        aml.integer(0),
        aml.integer(r.gsi),
      );
    }),
  );
}

/**
 * Builds the DSDT (revision 2: 64-bit integers).
 *
 * @param options devices to describe
 * @returns the table
 * @example
 * ```ts
 * import { buildDsdt } from "./dsdt.ts";
 * console.log(buildDsdt().subarray(0, 4)); // "DSDT"
 * ```
 */
export function buildDsdt(options: DsdtOptions = {}): Uint8Array {
  return buildTable("DSDT", 2, dsdtAml(options));
}
