/**
 * Virtio: split virtqueues, the modern PCI transport, virtio-blk, virtio-net
 * (TypeScript data path and vhost-net), virtio-rng and virtio-console.
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
export * from "./net_constants.ts";
export * from "./net.ts";
export * from "./net_backend.ts";
export * from "./vhost_net.ts";
export * from "./rng.ts";
export * from "./console.ts";
export * from "./config_select.ts";
export * from "./input.ts";
