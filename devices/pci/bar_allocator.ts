/**
 * Hands out BAR addresses from the PCI windows, naturally aligned, as
 * firmware would before the OS boots.
 *
 * @module
 */
import type { PciDevice } from "./pci_device.ts";
import { PCI_NUM_BARS } from "./pci_device.ts";

/** Start of the 32-bit MMIO window (the PCI hole below 4 GiB). */
export const PCI_MMIO32_START = 0xc000_0000;
/** End of the 32-bit MMIO window (the IOAPIC/LAPIC area starts here). */
export const PCI_MMIO32_END = 0xfec0_0000;
/** Start of the I/O port window for I/O BARs. */
export const PCI_IO_START = 0xc000;
/** End of the I/O port window. */
export const PCI_IO_END = 0x1_0000;

/**
 * A bump allocator over the MMIO and I/O windows.
 *
 * @example
 * ```ts
 * import { PciBarAllocator } from "./bar_allocator.ts";
 * const a = new PciBarAllocator();
 * console.log(a.allocateMmio(0x4000).toString(16)); // c0000000
 * ```
 */
export class PciBarAllocator {
  #mmio: number;
  readonly #mmioEnd: number;
  #io: number;
  readonly #ioEnd: number;

  /** @param options window bounds, defaulting to the PC layout */
  constructor(
    options: { mmioStart?: number; mmioEnd?: number; ioStart?: number; ioEnd?: number } = {},
  ) {
    this.#mmio = options.mmioStart ?? PCI_MMIO32_START;
    this.#mmioEnd = options.mmioEnd ?? PCI_MMIO32_END;
    this.#io = options.ioStart ?? PCI_IO_START;
    this.#ioEnd = options.ioEnd ?? PCI_IO_END;
  }

  /**
   * An MMIO range of `size` bytes aligned to `size`.
   *
   * @param size power-of-two size
   * @returns its guest address
   */
  allocateMmio(size: number): number {
    const base = Math.ceil(this.#mmio / size) * size;
    if (base + size > this.#mmioEnd) throw new RangeError("PCI MMIO window exhausted");
    this.#mmio = base + size;
    return base;
  }

  /**
   * An I/O port range of `size` ports aligned to `size`.
   *
   * @param size power-of-two size
   * @returns its first port
   */
  allocateIo(size: number): number {
    const base = Math.ceil(this.#io / size) * size;
    if (base + size > this.#ioEnd) throw new RangeError("PCI I/O window exhausted");
    this.#io = base + size;
    return base;
  }

  /**
   * Programs every BAR of a device with a fresh range.
   *
   * @param dev the device
   */
  assign(dev: PciDevice): void {
    for (let i = 0; i < PCI_NUM_BARS; i++) {
      const spec = dev.barSpec(i);
      if (!spec) continue;
      const addr = spec.kind === "io" ? this.allocateIo(spec.size) : this.allocateMmio(spec.size);
      dev.setBarAddress(i, addr);
    }
  }
}
