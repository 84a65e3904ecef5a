/**
 * The /dev/kvm system fd: API version, capabilities, supported CPUID, and
 * VM creation (rust-vmm's `Kvm`).
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { check, errno, ErrnoError } from "../sys/errno.ts";
import { closeFd, O_RDWR, openFile } from "../sys/fd.ts";
import {
  IOCTLS,
  KVM_API_VERSION,
  KVM_CAP_COALESCED_MMIO,
  KVM_CAP_COALESCED_PIO,
  kvm_cpuid2,
  kvm_cpuid_entry2,
} from "./abi.ts";
import { KvmVm } from "./vm.ts";

/** One CPUID leaf as KVM reports and takes it. */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** Thrown when /dev/kvm speaks another API version. */
export class KvmApiVersionError extends Error {
  /** @param version what the kernel reported */
  constructor(version: number) {
    super(`KVM API version ${version} is not supported (expected ${KVM_API_VERSION})`);
    this.name = "KvmApiVersionError";
  }
}

/**
 * An open /dev/kvm.
 *
 * @example
 * ```ts ignore
 * import { Kvm } from "./kvm.ts";
 * const kvm = Kvm.open();
 * const vm = kvm.createVm();
 * ```
 */
export class Kvm {
  /** The system fd. */
  readonly fd: number;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /**
   * Opens the KVM device and checks the API version.
   *
   * @param path usually /dev/kvm
   * @returns the handle
   */
  static open(path = "/dev/kvm"): Kvm {
    const fd = openFile(path, O_RDWR);
    const kvm = new Kvm(fd);
    const v = kvm.apiVersion();
    if (v !== KVM_API_VERSION) {
      closeFd(fd);
      throw new KvmApiVersionError(v);
    }
    return kvm;
  }

  /** @returns KVM_GET_API_VERSION */
  apiVersion(): number {
    return check(
      "KVM_GET_API_VERSION",
      libc.ioctl_u64(this.fd, BigInt(IOCTLS.KVM_GET_API_VERSION), 0n),
    );
  }

  /**
   * KVM_CHECK_EXTENSION.
   *
   * @param cap a KVM_CAP_* value
   * @returns 0 if absent, otherwise a positive capability-specific value
   */
  checkExtension(cap: number): number {
    const r = libc.ioctl_u64(this.fd, BigInt(IOCTLS.KVM_CHECK_EXTENSION), BigInt(cap));
    return r < 0 ? 0 : r;
  }

  /** @returns the size of the kvm_run mapping of a vCPU fd */
  vcpuMmapSize(): number {
    return check(
      "KVM_GET_VCPU_MMAP_SIZE",
      libc.ioctl_u64(this.fd, BigInt(IOCTLS.KVM_GET_VCPU_MMAP_SIZE), 0n),
    );
  }

  /** @returns the CPUID leaves this host's KVM can expose (KVM_GET_SUPPORTED_CPUID) */
  supportedCpuid(): CpuidEntry[] {
    const max = 256;
    const buf = new Uint8Array(kvm_cpuid2.size + max * kvm_cpuid_entry2.size);
    const v = new DataView(buf.buffer);
    v.setUint32(kvm_cpuid2.fields.nent, max, true);
    if (libc.ioctl_buf(this.fd, BigInt(IOCTLS.KVM_GET_SUPPORTED_CPUID), buf) < 0) {
      throw new ErrnoError("KVM_GET_SUPPORTED_CPUID", errno());
    }
    const n = v.getUint32(kvm_cpuid2.fields.nent, true);
    const out: CpuidEntry[] = [];
    const f = kvm_cpuid_entry2.fields;
    for (let i = 0; i < n; i++) {
      const at = kvm_cpuid2.size + i * kvm_cpuid_entry2.size;
      out.push({
        function: v.getUint32(at + f.function, true),
        index: v.getUint32(at + f.index, true),
        flags: v.getUint32(at + f.flags, true),
        eax: v.getUint32(at + f.eax, true),
        ebx: v.getUint32(at + f.ebx, true),
        ecx: v.getUint32(at + f.ecx, true),
        edx: v.getUint32(at + f.edx, true),
      });
    }
    return out;
  }

  /** @returns a new VM (KVM_CREATE_VM) */
  createVm(): KvmVm {
    const fd = check("KVM_CREATE_VM", libc.ioctl_u64(this.fd, BigInt(IOCTLS.KVM_CREATE_VM), 0n));
    // The ring's page, where port ranges may be coalesced too (Linux 4.20+).
    const coalesced = this.checkExtension(KVM_CAP_COALESCED_PIO) > 0
      ? this.checkExtension(KVM_CAP_COALESCED_MMIO)
      : 0;
    return new KvmVm(fd, this.vcpuMmapSize(), coalesced);
  }

  /** Closes the system fd (VMs stay valid). */
  close(): void {
    closeFd(this.fd);
  }
}
