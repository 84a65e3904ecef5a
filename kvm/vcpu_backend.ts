/**
 * KVM as a vCPU thread's backend (hypervisor/types.ts
 * {@link VcpuThreadBackend}): the vCPU over its fd and kvm_run mapping, and
 * KVM_IRQ_LINE interrupt lines. vCPU threads load this module by URL from
 * the spec the builder gives them.
 *
 * @module
 */
import type { InterruptLine, VcpuBackendSpec, VcpuThreadBackend } from "../hypervisor/types.ts";
import { KvmVcpu } from "./vcpu.ts";
import { KvmIrqLine, type VcpuHandleData } from "./vm.ts";

/** What a KVM vCPU thread is built from. */
export interface KvmVcpuBackendData {
  /** The vCPU's fd and kvm_run mapping. */
  readonly handle: VcpuHandleData;
  /** The VM fd (KVM_IRQ_LINE). */
  readonly vmFd: number;
  /** Whether the VM has an in-kernel irqchip; without one, lines go nowhere. */
  readonly irqchip: boolean;
}

const NO_LINE: InterruptLine = { set() {} };

/**
 * Builds the backend in a vCPU thread.
 *
 * @param data the vCPU handle, VM fd and whether there is an irqchip
 * @returns the vCPU and interrupt lines
 * @example
 * ```ts ignore
 * const { vcpu, irqLine } = kvmVcpuBackend({ handle, vmFd, irqchip: true });
 * ```
 */
export function kvmVcpuBackend(data: KvmVcpuBackendData): VcpuThreadBackend {
  const lines = new Map<number, InterruptLine>();
  return {
    vcpu: new KvmVcpu(data.handle),
    irqLine(gsi: number): InterruptLine {
      if (!data.irqchip) return NO_LINE;
      let l = lines.get(gsi);
      if (!l) lines.set(gsi, l = new KvmIrqLine(data.vmFd, gsi));
      return l;
    },
  };
}

/**
 * The spec a vCPU thread loads {@link kvmVcpuBackend} from.
 *
 * @param data the vCPU handle and VM fd
 * @returns the spec
 * @example
 * ```ts ignore
 * const spec = kvmVcpuBackendSpec({ handle: vm.createVcpu(0), vmFd: vm.fd, irqchip: true });
 * ```
 */
export function kvmVcpuBackendSpec(data: KvmVcpuBackendData): VcpuBackendSpec {
  return { module: new URL(import.meta.url).href, factory: "kvmVcpuBackend", data };
}
