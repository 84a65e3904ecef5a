/**
 * PCI: bus 0 with configuration mechanism #1, a host bridge, type-0
 * functions with BARs and capabilities, MSI-X, and BAR address allocation.
 *
 * @module
 */
export * from "./constants.ts";
export * from "./pci_device.ts";
export * from "./host_bridge.ts";
export * from "./pci_bus.ts";
export * from "./bar_allocator.ts";
export * from "./msix.ts";
export * from "./mmio_window.ts";
