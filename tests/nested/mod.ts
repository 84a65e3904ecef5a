/**
 * The nested KVM host: run commands where a real /dev/kvm exists, even on
 * machines without one (QEMU's emulator + a Debian kernel with kvm_amd).
 *
 * @module
 */
export * from "./l1_image.ts";
export * from "./route.ts";
export * from "./run_nested.ts";
