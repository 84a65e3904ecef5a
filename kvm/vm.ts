/**
 * A KVM VM fd: memory slots, in-kernel irqchip and PIT, interrupts,
 * irqfd/ioeventfd, vCPU creation (rust-vmm's `VmFd`).
 *
 * @module
 */
import type { GsiRoute, IoEventFd, Vm } from "../hypervisor/types.ts";
import { libc } from "../sys/libc.ts";
import { check, errno, ErrnoError } from "../sys/errno.ts";
import { closeFd, MAP_SHARED, mmap, munmap, PROT_READ, PROT_WRITE } from "../sys/fd.ts";
import type { IrqLine } from "../devices/irq.ts";
import {
  IOCTLS,
  kvm_coalesced_mmio_zone,
  kvm_ioeventfd,
  KVM_IOEVENTFD_FLAG_DATAMATCH,
  KVM_IOEVENTFD_FLAG_DEASSIGN,
  KVM_IOEVENTFD_FLAG_PIO,
  kvm_irq_level,
  kvm_irq_routing,
  kvm_irq_routing_entry,
  KVM_IRQ_ROUTING_IRQCHIP,
  KVM_IRQ_ROUTING_MSI,
  kvm_irqfd,
  KVM_IRQFD_FLAG_DEASSIGN,
  kvm_msi,
  kvm_pit_config,
  KVM_PIT_SPEAKER_DUMMY,
  kvm_userspace_memory_region,
} from "./abi.ts";

/** A vCPU fd and its mapped kvm_run page, ready to hand to a vCPU thread. */
export interface VcpuHandleData {
  /** vCPU index (its APIC id). */
  readonly index: number;
  /** The vCPU fd. */
  readonly fd: number;
  /** Host address of the kvm_run mapping (process-wide, usable by any Worker). */
  readonly runAddr: bigint;
  /** Size of that mapping. */
  readonly runSize: number;
  /** Byte offset of the VM's coalesced ring in that mapping; -1 without one. */
  readonly coalescedRing: number;
}

export type { GsiRoute, IoEventFd } from "../hypervisor/types.ts";

/**
 * A VM.
 *
 * @example
 * ```ts ignore
 * import { Kvm } from "./kvm.ts";
 * const vm = Kvm.open().createVm();
 * vm.createIrqchip();
 * ```
 */
export class KvmVm implements Vm {
  /** The VM fd. */
  readonly fd: number;
  readonly #runSize: number;
  /** Byte offset of the coalesced ring in a vCPU mapping; -1: no coalesced PIO. */
  readonly #coalescedRing: number;
  /** vCPUs created on this VM: close() releases their fds and kvm_run mappings. */
  readonly #vcpus: VcpuHandleData[] = [];

  /**
   * @param fd VM fd from KVM_CREATE_VM
   * @param runSize KVM_GET_VCPU_MMAP_SIZE
   * @param coalescedPage the coalesced ring's page in a vCPU mapping where
   *   the host supports coalesced PIO (KVM_CAP_COALESCED_MMIO's value), else 0
   */
  constructor(fd: number, runSize: number, coalescedPage = 0) {
    this.fd = fd;
    this.#runSize = runSize;
    const ring = coalescedPage * 4096;
    this.#coalescedRing = coalescedPage > 0 && ring + 4096 <= runSize ? ring : -1;
  }

  /**
   * KVM_REGISTER_COALESCED_MMIO for a port range (see hypervisor/types.ts
   * {@link Vm.coalescePio}).
   *
   * @param port first port
   * @param size ports in the range
   * @returns false where the host has no coalesced PIO or refused the range
   */
  coalescePio(port: number, size: number): boolean {
    if (this.#coalescedRing < 0) return false;
    const buf = new Uint8Array(kvm_coalesced_mmio_zone.size);
    const v = new DataView(buf.buffer);
    const f = kvm_coalesced_mmio_zone.fields;
    v.setUint32(f.addr, port, true);
    v.setUint32(f.size, size, true);
    v.setUint32(f.pio, 1, true);
    return libc.ioctl_buf(this.fd, BigInt(IOCTLS.KVM_REGISTER_COALESCED_MMIO), buf) === 0;
  }

  #ioctl(name: keyof typeof IOCTLS, buf: Uint8Array<ArrayBuffer>): number {
    const r = libc.ioctl_buf(this.fd, BigInt(IOCTLS[name]), buf);
    if (r < 0) throw new ErrnoError(name, errno());
    return r;
  }

  /**
   * KVM_SET_USER_MEMORY_REGION.
   *
   * @param slot slot number
   * @param region guest address, size and host address
   */
  setUserMemoryRegion(
    slot: number,
    region: { guestAddr: number; size: number; hostAddr: bigint; flags?: number },
  ): void {
    const b = new Uint8Array(kvm_userspace_memory_region.size);
    const v = new DataView(b.buffer);
    const f = kvm_userspace_memory_region.fields;
    v.setUint32(f.slot, slot, true);
    v.setUint32(f.flags, region.flags ?? 0, true);
    v.setBigUint64(f.guest_phys_addr, BigInt(region.guestAddr), true);
    v.setBigUint64(f.memory_size, BigInt(region.size), true);
    v.setBigUint64(f.userspace_addr, region.hostAddr, true);
    this.#ioctl("KVM_SET_USER_MEMORY_REGION", b);
  }

  /** KVM_SET_TSS_ADDR (three pages Intel VMX needs below 4 GiB). @param addr guest address */
  setTssAddr(addr: number): void {
    check(
      "KVM_SET_TSS_ADDR",
      libc.ioctl_u64(this.fd, BigInt(IOCTLS.KVM_SET_TSS_ADDR), BigInt(addr)),
    );
  }

  /** KVM_SET_IDENTITY_MAP_ADDR (one page). @param addr guest address */
  setIdentityMapAddr(addr: number): void {
    const b = new BigUint64Array([BigInt(addr)]);
    this.#ioctl("KVM_SET_IDENTITY_MAP_ADDR", new Uint8Array(b.buffer));
  }

  /** KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and LAPICs. */
  createIrqchip(): void {
    check("KVM_CREATE_IRQCHIP", libc.ioctl_u64(this.fd, BigInt(IOCTLS.KVM_CREATE_IRQCHIP), 0n));
  }

  /** KVM_CREATE_PIT2: in-kernel i8254 (ports 0x40-0x43, 0x61 with the dummy speaker). */
  createPit2(): void {
    const b = new Uint8Array(kvm_pit_config.size);
    new DataView(b.buffer).setUint32(kvm_pit_config.fields.flags, KVM_PIT_SPEAKER_DUMMY, true);
    this.#ioctl("KVM_CREATE_PIT2", b);
  }

  /**
   * KVM_IRQ_LINE.
   *
   * @param irq GSI
   * @param level line level
   */
  irqLine(irq: number, level: boolean): void {
    const b = new Uint8Array(kvm_irq_level.size);
    const v = new DataView(b.buffer);
    v.setUint32(kvm_irq_level.fields.irq, irq, true);
    v.setUint32(kvm_irq_level.fields.level, level ? 1 : 0, true);
    this.#ioctl("KVM_IRQ_LINE", b);
  }

  /**
   * KVM_IRQFD: writes to `fd` raise `gsi`.
   *
   * @param fd an eventfd
   * @param gsi the GSI
   * @param deassign remove instead of add
   */
  irqfd(fd: number, gsi: number, deassign = false): void {
    const b = new Uint8Array(kvm_irqfd.size);
    const v = new DataView(b.buffer);
    v.setUint32(kvm_irqfd.fields.fd, fd, true);
    v.setUint32(kvm_irqfd.fields.gsi, gsi, true);
    v.setUint32(kvm_irqfd.fields.flags, deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0, true);
    this.#ioctl("KVM_IRQFD", b);
  }

  /**
   * KVM_IOEVENTFD: guest writes to addr signal an eventfd without a userspace exit.
   *
   * @param e the registration
   * @param deassign remove instead of add
   */
  ioeventfd(e: IoEventFd, deassign = false): void {
    const b = new Uint8Array(kvm_ioeventfd.size);
    const v = new DataView(b.buffer);
    const f = kvm_ioeventfd.fields;
    let flags = 0;
    if (e.pio) flags |= KVM_IOEVENTFD_FLAG_PIO;
    if (e.datamatch !== undefined) {
      flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
      v.setBigUint64(f.datamatch, e.datamatch, true);
    }
    if (deassign) flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    v.setBigUint64(f.addr, BigInt(e.addr), true);
    v.setUint32(f.len, e.len, true);
    v.setInt32(f.fd, e.fd, true);
    v.setUint32(f.flags, flags, true);
    this.#ioctl("KVM_IOEVENTFD", b);
  }

  /**
   * KVM_SET_GSI_ROUTING: replaces the whole routing table.
   *
   * @param routes the entries
   */
  setGsiRouting(routes: readonly GsiRoute[]): void {
    const es = kvm_irq_routing_entry.size;
    const b = new Uint8Array(kvm_irq_routing.size + routes.length * es);
    const v = new DataView(b.buffer);
    v.setUint32(kvm_irq_routing.fields.nr, routes.length, true);
    const f = kvm_irq_routing_entry.fields;
    routes.forEach((r, i) => {
      const at = kvm_irq_routing.size + i * es;
      v.setUint32(at + f.gsi, r.gsi, true);
      if (r.kind === "irqchip") {
        v.setUint32(at + f.type, KVM_IRQ_ROUTING_IRQCHIP, true);
        v.setUint32(at + f["u.irqchip.irqchip"], r.irqchip, true);
        v.setUint32(at + f["u.irqchip.pin"], r.pin, true);
      } else {
        v.setUint32(at + f.type, KVM_IRQ_ROUTING_MSI, true);
        v.setUint32(at + f["u.msi.address_lo"], r.addressLo, true);
        v.setUint32(at + f["u.msi.address_hi"], r.addressHi, true);
        v.setUint32(at + f["u.msi.data"], r.data, true);
      }
    });
    this.#ioctl("KVM_SET_GSI_ROUTING", b);
  }

  /**
   * KVM_SIGNAL_MSI.
   *
   * @param msi address and data
   * @returns >0 if delivered, 0 if blocked by the guest
   */
  signalMsi(msi: { addressLo: number; addressHi: number; data: number }): number {
    const b = new Uint8Array(kvm_msi.size);
    const v = new DataView(b.buffer);
    v.setUint32(kvm_msi.fields.address_lo, msi.addressLo, true);
    v.setUint32(kvm_msi.fields.address_hi, msi.addressHi, true);
    v.setUint32(kvm_msi.fields.data, msi.data, true);
    return this.#ioctl("KVM_SIGNAL_MSI", b);
  }

  /**
   * KVM_CREATE_VCPU, and maps its kvm_run page.
   *
   * @param index vCPU id (APIC id)
   * @returns fd and kvm_run address for the vCPU thread
   */
  createVcpu(index: number): VcpuHandleData {
    const fd = check(
      "KVM_CREATE_VCPU",
      libc.ioctl_u64(this.fd, BigInt(IOCTLS.KVM_CREATE_VCPU), BigInt(index)),
    );
    let runAddr: bigint;
    try {
      runAddr = mmap(this.#runSize, { prot: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd });
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    const handle = {
      index,
      fd,
      runAddr,
      runSize: this.#runSize,
      coalescedRing: this.#coalescedRing,
    };
    this.#vcpus.push(handle);
    return handle;
  }

  /**
   * Releases the VM: each vCPU's kvm_run mapping and fd, then the VM fd
   * (KVM frees the VM once no fd or mapping refers to it). Call it after
   * every vCPU thread has stopped.
   */
  close(): void {
    for (const v of this.#vcpus.splice(0)) {
      munmap(v.runAddr, v.runSize);
      closeFd(v.fd);
    }
    closeFd(this.fd);
  }
}

const KVM_IRQ_LINE = BigInt(IOCTLS.KVM_IRQ_LINE);

/**
 * An IrqLine driven by KVM_IRQ_LINE on a VM fd; usable from any thread of
 * the process (the fd is process-wide). Allocates nothing per call. A
 * failing ioctl (no irqchip, a GSI KVM does not route) cannot be thrown
 * into the device that raised the line, so the first failure of each line
 * is reported through `report` (default: one line on stderr).
 */
export class KvmIrqLine implements IrqLine {
  readonly #vmFd: number;
  readonly #gsi: number;
  readonly #buf = new Uint8Array(kvm_irq_level.size);
  readonly #view = new DataView(this.#buf.buffer);
  readonly #report: (e: ErrnoError) => void;
  #reported = false;

  /**
   * @param vmFd the VM fd
   * @param gsi the interrupt line
   * @param report where the first failure goes (default console.error)
   */
  constructor(vmFd: number, gsi: number, report?: (e: ErrnoError) => void) {
    this.#vmFd = vmFd;
    this.#gsi = gsi;
    this.#report = report ?? ((e) => console.error(`denovmm: ${e.message}`));
    this.#view.setUint32(kvm_irq_level.fields.irq, gsi, true);
  }

  /** @param level new level */
  set(level: boolean): void {
    this.#view.setUint32(kvm_irq_level.fields.level, level ? 1 : 0, true);
    if (libc.ioctl_buf(this.#vmFd, KVM_IRQ_LINE, this.#buf) < 0 && !this.#reported) {
      this.#reported = true;
      this.#report(new ErrnoError(`KVM_IRQ_LINE (GSI ${this.#gsi})`, errno()));
    }
  }
}
