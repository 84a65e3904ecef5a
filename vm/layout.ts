/**
 * Where PCI functions and their interrupts go, decided once for the whole
 * machine before guest memory is written: a slot on bus 0 per function,
 * its INTx GSI (the usual swizzle over IOAPIC pins 16..23, described by the
 * DSDT's _PRT), and a run of GSIs for its MSI-X vectors above the IOAPIC's.
 *
 * @module
 */
import type { PciIrqRoute } from "../acpi/dsdt.ts";
import { VmConfigError } from "./config.ts";

/** First slot a function gets (slot 0 is the host bridge). */
export const FIRST_PCI_SLOT = 1;
/** Slots on bus 0. */
export const PCI_SLOTS = 32;
/** Functions bus 0 can take. */
export const MAX_PCI_FUNCTIONS = PCI_SLOTS - FIRST_PCI_SLOT;
/** IOAPIC pins KVM models (GSIs 0..23). */
export const IOAPIC_PINS = 24;
/** First GSI handed to MSI-X vectors. */
export const MSI_GSI_BASE = IOAPIC_PINS;
/** GSIs KVM routes (KVM_MAX_IRQ_ROUTES). */
export const MAX_GSI = 4096;

/** One function's place. */
export interface PciFunctionPlan {
  /** PCI device number on bus 0. */
  readonly slot: number;
  /** GSI of its INTA# line. */
  readonly intxGsi: number;
  /** GSI of MSI-X vector 0 (vector v uses msiGsiBase + v). */
  readonly msiGsiBase: number;
  /** MSI-X vectors. */
  readonly vectors: number;
}

/**
 * The GSI an INTx pin of a slot is wired to.
 *
 * @param slot PCI device number
 * @param pin 0 = INTA .. 3 = INTD
 * @returns the GSI
 * @example
 * ```ts
 * import { intxGsi } from "./layout.ts";
 * console.log(intxGsi(1, 0)); // 17
 * ```
 */
export function intxGsi(slot: number, pin: number): number {
  return 16 + ((slot + pin) & 7);
}

/**
 * The _PRT of the root bridge for the given slots (all four pins each).
 *
 * @param slots populated slots
 * @returns routes for the DSDT
 * @example
 * ```ts
 * import { pciIrqRoutesFor } from "./layout.ts";
 * console.log(pciIrqRoutesFor([1]).length); // 4
 * ```
 */
export function pciIrqRoutesFor(slots: readonly number[]): PciIrqRoute[] {
  const routes: PciIrqRoute[] = [];
  for (const slot of slots) {
    for (let pin = 0; pin < 4; pin++) routes.push({ slot, pin, gsi: intxGsi(slot, pin) });
  }
  return routes;
}

/**
 * Checks that a number of functions fits on bus 0 (before anything is
 * opened or built).
 *
 * @param count functions asked for
 * @throws {VmConfigError} when there are more than {@link MAX_PCI_FUNCTIONS}
 * @example
 * ```ts
 * import { checkPciFunctionCount } from "./layout.ts";
 * checkPciFunctionCount(4);
 * ```
 */
export function checkPciFunctionCount(count: number): void {
  if (count > MAX_PCI_FUNCTIONS) {
    throw new VmConfigError(
      `Too many PCI devices: ${count} asked for, bus 0 has room for ${MAX_PCI_FUNCTIONS} ` +
        `(disks and other virtio devices count one each)`,
    );
  }
}

/**
 * Places functions with the given MSI-X vector counts, in order.
 *
 * @param vectors MSI-X vectors of each function
 * @returns one plan per function
 * @throws {VmConfigError} when they do not fit (slots or GSIs)
 * @example
 * ```ts
 * import { planPciFunctions } from "./layout.ts";
 * const [a, b] = planPciFunctions([2, 3]);
 * console.log(a.slot, a.msiGsiBase, b.slot, b.msiGsiBase); // 1 24 2 26
 * ```
 */
export function planPciFunctions(vectors: readonly number[]): PciFunctionPlan[] {
  checkPciFunctionCount(vectors.length);
  const out: PciFunctionPlan[] = [];
  let gsi = MSI_GSI_BASE;
  vectors.forEach((n, i) => {
    const slot = FIRST_PCI_SLOT + i;
    if (gsi + n > MAX_GSI) {
      throw new VmConfigError(
        `Too many interrupt vectors: the PCI devices need more than ${MAX_GSI - MSI_GSI_BASE}`,
      );
    }
    out.push({ slot, intxGsi: intxGsi(slot, 0), msiGsiBase: gsi, vectors: n });
    gsi += n;
  });
  return out;
}
