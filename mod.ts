/**
 * denovmm's public API: build and run virtual machines on Linux KVM from
 * TypeScript.
 *
 * ```ts ignore
 * import { Machine, setRealModeEntry } from "./mod.ts";
 * const m = Machine.create({ memoryBytes: 64 << 20, cpus: 1 });
 * ```
 *
 * @module
 */
export * from "./machine/machine.ts";
export * from "./machine/cli.ts";
export * from "./machine/size.ts";
export * from "./machine/linux_boot.ts";
export * from "./machine/run.ts";
export * from "./machine/disks.ts";
export * from "./machine/pci_devices.ts";
export * from "./hypervisor/types.ts";
export * from "./memory/mod.ts";
export * from "./devices/bus.ts";
export * from "./devices/irq.ts";
export * from "./devices/device_spec.ts";
export * from "./devices/shared_state.ts";
export * from "./vcpu/shared_state.ts";
export * from "./vcpu/exit_codes.ts";
export { VcpuThread } from "./vcpu/handle.ts";
export * as kvm from "./kvm/mod.ts";
export * as sys from "./sys/mod.ts";
export * as boot from "./boot/mod.ts";
export * as acpi from "./acpi/mod.ts";
export * as legacy from "./devices/legacy/mod.ts";
export * as pci from "./devices/pci/mod.ts";
export * as virtio from "./devices/virtio/mod.ts";
export * as mainloop from "./mainloop/mod.ts";
export * as aio from "./aio/mod.ts";
export * as guests from "./guests/mod.ts";
