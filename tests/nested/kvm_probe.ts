/**
 * Smoke probe for a KVM host: opens /dev/kvm through the project's libc
 * bindings and issues the first ioctls every VMM makes. Run it inside the
 * nested host to prove that route gives a real KVM:
 *
 *     deno run -A tests/nested/run.ts -- deno run --no-check -A tests/nested/kvm_probe.ts
 *
 * Prints `KVM_GET_API_VERSION=12`, `KVM_CREATE_VM fd=N`, `KVM_CREATE_VCPU fd=N`
 * and exits 0, or exits 1 naming the failed step. (A test tool: the VMM's own
 * KVM ioctls live in kvm/.)
 *
 * @module
 */

import { libc } from "../../sys/libc.ts";
import { errno, ErrnoError } from "../../sys/errno.ts";
import { closeFd, O_RDWR, openFile } from "../../sys/fd.ts";

/** `_IO(KVMIO, 0x00)`. */
export const KVM_GET_API_VERSION = 0xae00;
/** `_IO(KVMIO, 0x01)`. */
export const KVM_CREATE_VM = 0xae01;
/** `_IO(KVMIO, 0x03)`. */
export const KVM_CHECK_EXTENSION = 0xae03;
/** `_IO(KVMIO, 0x41)`. */
export const KVM_CREATE_VCPU = 0xae41;
/** Capability number of an in-kernel irqchip. */
export const KVM_CAP_IRQCHIP = 0;

function ioctl(fd: number, request: number, arg: bigint, what: string): number {
  const r = libc.ioctl_u64(fd, BigInt(request), arg);
  if (r < 0) throw new ErrnoError(what, errno());
  return r;
}

/**
 * Runs the probe and returns what it saw; throws ErrnoError on the first failed step.
 *
 * @example
 * ```ts ignore
 * const r = probeKvm(); // { apiVersion: 12, vmFd: 4, vcpuFd: 5, irqchip: 1 }
 * ```
 */
export function probeKvm(path = "/dev/kvm"): {
  apiVersion: number;
  vmFd: number;
  vcpuFd: number;
  irqchip: number;
} {
  const kvm = openFile(path, O_RDWR);
  try {
    const apiVersion = ioctl(kvm, KVM_GET_API_VERSION, 0n, "KVM_GET_API_VERSION");
    const irqchip = ioctl(kvm, KVM_CHECK_EXTENSION, BigInt(KVM_CAP_IRQCHIP), "KVM_CHECK_EXTENSION");
    const vmFd = ioctl(kvm, KVM_CREATE_VM, 0n, "KVM_CREATE_VM");
    try {
      const vcpuFd = ioctl(vmFd, KVM_CREATE_VCPU, 0n, "KVM_CREATE_VCPU");
      closeFd(vcpuFd);
      return { apiVersion, vmFd, vcpuFd, irqchip };
    } finally {
      closeFd(vmFd);
    }
  } finally {
    closeFd(kvm);
  }
}

if (import.meta.main) {
  const t0 = performance.now();
  try {
    const r = probeKvm();
    console.log(`KVM_GET_API_VERSION=${r.apiVersion}`);
    console.log(`KVM_CHECK_EXTENSION(KVM_CAP_IRQCHIP)=${r.irqchip}`);
    console.log(`KVM_CREATE_VM fd=${r.vmFd}`);
    console.log(`KVM_CREATE_VCPU fd=${r.vcpuFd}`);
    console.log(`probe took ${(performance.now() - t0).toFixed(1)} ms`);
    Deno.exit(r.apiVersion === 12 ? 0 : 1);
  } catch (err) {
    console.error(`KVM probe failed: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
