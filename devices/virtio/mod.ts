/**
 * Virtio: split virtqueues, the modern PCI transport, and virtio-blk.
 *
 * @module
 */
export * from "./constants.ts";
export * from "./queue.ts";
export * from "./device.ts";
export * from "./pci.ts";
export * from "./block.ts";
export * from "./disk_file.ts";
export * from "./image_lock.ts";
export * from "./sync_io.ts";
export * from "./pci_backend.ts";
