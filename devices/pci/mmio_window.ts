/**
 * The PCI MMIO window as one bus device that routes each access to whichever
 * BAR currently decodes that address, read from the shared configuration
 * space. vCPU Workers map the window once and never have to move BARs on
 * their own buses when the guest reprograms them.
 *
 * @module
 */
import type { BusDevice } from "../bus.ts";
import { PCI_NUM_BARS, type PciDevice } from "./pci_device.ts";

/**
 * Dispatches [base, base+size) to BARs by their live addresses. Unclaimed
 * reads return 0 and unclaimed writes are dropped (STYLE 11).
 *
 * @example
 * ```ts
 * import { PciDevice } from "./pci_device.ts";
 * import { PciMmioWindow } from "./mmio_window.ts";
 * const dev = new PciDevice({ vendorId: 0x1234, deviceId: 1, classCode: 0 });
 * dev.addBar(0, { size: 0x1000, kind: "mem32" });
 * dev.setBarAddress(0, 0xc000_0000);
 * dev.configWrite(4, new Uint8Array([2, 0])); // memory decode on
 * const win = new PciMmioWindow(0xc000_0000, [dev]);
 * const d = new Uint8Array(4);
 * win.read(0x10, d); // BAR 0, offset 0x10
 * ```
 */
export class PciMmioWindow implements BusDevice {
  readonly #base: number;
  readonly #devices: readonly PciDevice[];
  readonly #bars: { dev: PciDevice; bar: number; size: number }[] = [];

  /**
   * @param base guest address the window is mapped at
   * @param devices the functions whose memory BARs live in it
   */
  constructor(base: number, devices: readonly PciDevice[]) {
    this.#base = base;
    this.#devices = devices;
    for (const dev of devices) {
      for (let bar = 0; bar < PCI_NUM_BARS; bar++) {
        const spec = dev.barSpec(bar);
        if (spec && spec.kind !== "io") this.#bars.push({ dev, bar, size: spec.size });
      }
    }
  }

  /** The functions routed through this window. */
  get devices(): readonly PciDevice[] {
    return this.#devices;
  }

  #find(addr: number, len: number): number {
    const bars = this.#bars;
    for (let i = 0; i < bars.length; i++) {
      const b = bars[i];
      const start = b.dev.barAddress(b.bar);
      if (start >= 0 && addr >= start && addr + len <= start + b.size) return i;
    }
    return -1;
  }

  /**
   * @param offset offset in the window
   * @param data buffer to fill
   */
  read(offset: number, data: Uint8Array): void {
    const addr = this.#base + offset;
    const i = this.#find(addr, data.length);
    if (i < 0) {
      data.fill(0);
      return;
    }
    const b = this.#bars[i];
    b.dev.barRead(b.bar, addr - b.dev.barAddress(b.bar), data);
  }

  /**
   * @param offset offset in the window
   * @param data bytes written
   */
  write(offset: number, data: Uint8Array): void {
    const addr = this.#base + offset;
    const i = this.#find(addr, data.length);
    if (i < 0) return;
    const b = this.#bars[i];
    b.dev.barWrite(b.bar, addr - b.dev.barAddress(b.bar), data);
  }
}
