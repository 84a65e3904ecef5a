/**
 * PCI bus 0 and configuration mechanism #1: CONFIG_ADDRESS at port 0xCF8
 * (dword, bit 31 enables) and CONFIG_DATA at 0xCFC-0xCFF (byte, word or
 * dword at the matching offset).
 *
 * @module
 */
import type { BusDevice } from "../bus.ts";
import { PciHostBridge } from "./host_bridge.ts";
import type { PciDevice } from "./pci_device.ts";

/** Slots (devices) on a bus. */
export const PCI_SLOTS = 32;
const ENABLE = 0x8000_0000;

/**
 * Bus 0 with its config-space I/O ports. Insert {@link PciBus.configIo} on
 * the PIO bus at 0xCF8, size 8. Only function 0 of each slot exists; absent
 * functions read as all-ones.
 *
 * @example
 * ```ts
 * import { PciBus } from "./pci_bus.ts";
 * const bus = new PciBus();
 * const d = new Uint8Array(4);
 * const addr = new Uint8Array(new Uint32Array([0x8000_0000]).buffer);
 * bus.configIo.write(0, addr); // bus 0, slot 0, function 0, offset 0
 * bus.configIo.read(4, d);
 * console.log(new DataView(d.buffer).getUint32(0, true).toString(16)); // 29c08086
 * ```
 */
export class PciBus {
  readonly #slots: (PciDevice | null)[] = new Array(PCI_SLOTS).fill(null);
  /** CONFIG_ADDRESS, shared by all vCPUs like the real latch. */
  readonly #address: Uint32Array;
  /** The host bridge in slot 0. */
  readonly hostBridge: PciHostBridge;
  /** The 8-port device for 0xCF8..0xCFF. */
  readonly configIo: BusDevice;

  /**
   * @param options `addressState`: a 4-byte SharedArrayBuffer for CONFIG_ADDRESS
   *   shared with other Workers' instances; `hostBridge`: an existing bridge
   */
  constructor(options: { addressState?: SharedArrayBuffer; hostBridge?: PciHostBridge } = {}) {
    this.#address = new Uint32Array(options.addressState ?? new SharedArrayBuffer(4));
    this.hostBridge = options.hostBridge ?? new PciHostBridge();
    this.#slots[0] = this.hostBridge;
    this.configIo = {
      read: (offset: number, data: Uint8Array) => this.#ioRead(offset, data),
      write: (offset: number, data: Uint8Array) => this.#ioWrite(offset, data),
    };
  }

  /** The CONFIG_ADDRESS state, to share with other Workers. */
  get addressState(): SharedArrayBuffer {
    return this.#address.buffer as SharedArrayBuffer;
  }

  /**
   * Plugs a device into a slot (the first free one when not given).
   *
   * @param dev the function
   * @param slot slot number 1..31
   * @returns the slot used
   */
  add(dev: PciDevice, slot?: number): number {
    let s = slot ?? this.#slots.indexOf(null);
    if (slot === undefined && s < 0) throw new RangeError("PCI bus is full");
    s = s | 0;
    if (s < 0 || s >= PCI_SLOTS || this.#slots[s]) throw new RangeError(`PCI slot ${s} is taken`);
    this.#slots[s] = dev;
    return s;
  }

  /**
   * The device in a slot.
   *
   * @param slot slot number
   * @returns the device, or null
   */
  device(slot: number): PciDevice | null {
    return this.#slots[slot] ?? null;
  }

  /** The addressed device and register offset, or null. */
  #target(): PciDevice | null {
    const a = this.#address[0];
    if (!(a & ENABLE)) return null;
    const bus = (a >>> 16) & 0xff;
    const slot = (a >>> 11) & 0x1f;
    const fn = (a >>> 8) & 7;
    if (bus !== 0 || fn !== 0) return null;
    return this.#slots[slot];
  }

  #ioRead(offset: number, data: Uint8Array): void {
    if (offset < 4) {
      if (offset === 0 && data.length === 4) {
        const a = this.#address[0];
        data[0] = a & 0xff;
        data[1] = (a >>> 8) & 0xff;
        data[2] = (a >>> 16) & 0xff;
        data[3] = a >>> 24;
      } else data.fill(0xff);
      return;
    }
    const dev = this.#target();
    if (!dev || offset + data.length > 8) {
      data.fill(0xff);
      return;
    }
    dev.configRead((this.#address[0] & 0xfc) + offset - 4, data);
  }

  #ioWrite(offset: number, data: Uint8Array): void {
    if (offset < 4) {
      // Only a dword write to 0xCF8 latches the address (byte writes to
      // 0xCFB belong to the obsolete mechanism #2 probing).
      if (offset === 0 && data.length === 4) {
        const a = data[0] | (data[1] << 8) | (data[2] << 16) | (data[3] << 24);
        this.#address[0] = a & 0x80ff_fffc;
      }
      return;
    }
    const dev = this.#target();
    if (!dev || offset + data.length > 8) return;
    dev.configWrite((this.#address[0] & 0xfc) + offset - 4, data);
  }
}
