/**
 * The KVM backend of the hypervisor interface.
 *
 * @module
 */
export * from "./abi.ts";
export * from "./kvm.ts";
export * from "./vm.ts";
export * from "./vcpu.ts";
