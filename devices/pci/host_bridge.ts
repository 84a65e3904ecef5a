/**
 * The host bridge at 00:00.0, so that a guest probing bus 0 finds a root
 * complex as on a Q35 machine.
 *
 * @module
 */
import { PciDevice, type PciDeviceOptions } from "./pci_device.ts";
import {
  PCI_CLASS_BRIDGE_HOST,
  PCI_DEVICE_ID_INTEL_Q35_MCH,
  PCI_VENDOR_ID_INTEL,
} from "./constants.ts";

/**
 * A host bridge with no BARs: vendor 0x8086, device 0x29c0, class 0x0600.
 *
 * @example
 * ```ts
 * import { PciHostBridge } from "./host_bridge.ts";
 * const hb = new PciHostBridge();
 * console.log(hb.configU16(0).toString(16)); // 8086
 * ```
 */
export class PciHostBridge extends PciDevice {
  /** @param options shared state to attach to */
  constructor(options: PciDeviceOptions = {}) {
    super({
      vendorId: PCI_VENDOR_ID_INTEL,
      deviceId: PCI_DEVICE_ID_INTEL_Q35_MCH,
      classCode: PCI_CLASS_BRIDGE_HOST,
    }, options);
  }
}
