/**
 * A KVM vCPU, used by the one thread that runs it (rust-vmm's `VcpuFd`).
 * The kvm_run page is read in place through views built once, so decoding
 * an exit allocates nothing.
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { EAGAIN, EINTR, errno, ErrnoError } from "../sys/errno.ts";
import { hostBuffer } from "../sys/fd.ts";
import { ExitKind, type Regs, type Sregs, type Vcpu } from "../hypervisor/types.ts";
import {
  IOCTLS,
  kvm_coalesced_mmio,
  KVM_COALESCED_MMIO_MAX,
  kvm_coalesced_mmio_ring,
  kvm_cpuid2,
  kvm_cpuid_entry2,
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_MMIO,
  KVM_EXIT_SHUTDOWN,
  KVM_EXIT_SYSTEM_EVENT,
  kvm_fpu,
  kvm_lapic_state,
  kvm_mp_state,
  kvm_msr_entry,
  kvm_msrs,
  kvm_regs,
  kvm_run,
  kvm_sregs,
} from "./abi.ts";
import type { VcpuHandleData } from "./vm.ts";
import type { CpuidEntry } from "./kvm.ts";
import { decodeRegs, decodeSregs, encodeRegs, encodeSregs } from "./_codec.ts";

const R = kvm_run.fields;
const CM = kvm_coalesced_mmio.fields;
const CR = kvm_coalesced_mmio_ring.fields;

/**
 * A vCPU over its fd and kvm_run mapping.
 *
 * @example
 * ```ts ignore
 * import { KvmVcpu } from "./vcpu.ts";
 * const vcpu = new KvmVcpu(handleFromMainThread);
 * while (vcpu.run() !== 5) {}
 * ```
 */
export class KvmVcpu implements Vcpu {
  /** vCPU index. */
  readonly index: number;
  /** vCPU fd. */
  readonly fd: number;
  readonly #run: DataView<ArrayBuffer>;
  readonly #bytes: Uint8Array<ArrayBuffer>;
  readonly #mmioViews: Uint8Array<ArrayBuffer>[];
  #ioOffset = -1;
  #ioViews: Uint8Array<ArrayBuffer>[] = [];
  readonly #regsBuf = new Uint8Array(kvm_regs.size);
  readonly #sregsBuf = new Uint8Array(kvm_sregs.size);
  readonly #kvmRun = BigInt(IOCTLS.KVM_RUN);
  /** Byte offset of the VM's coalesced ring in the mapping; -1 without one. */
  readonly #ring: number;
  /** A coalesced write's bytes, copied out of its entry (views of lengths 0..8). */
  readonly #coalescedViews: Uint8Array[];

  /** @param h the handle the main thread created */
  constructor(h: VcpuHandleData) {
    this.index = h.index;
    this.fd = h.fd;
    const buf = hostBuffer(h.runAddr, h.runSize);
    this.#run = new DataView(buf);
    this.#bytes = new Uint8Array(buf);
    this.#mmioViews = [];
    for (let len = 0; len <= 8; len++) {
      this.#mmioViews.push(this.#bytes.subarray(R["mmio.data"], R["mmio.data"] + len));
    }
    this.#ring = h.coalescedRing;
    const scratch = new Uint8Array(8);
    this.#coalescedViews = [];
    for (let len = 0; len <= 8; len++) this.#coalescedViews.push(scratch.subarray(0, len));
  }

  /**
   * See hypervisor/types.ts {@link Vcpu.drainCoalesced}. The ring is the
   * VM's (every vCPU maps the same page): the caller's lock keeps two vCPU
   * threads from taking the same entry. Writes queued after the call began
   * wait for the next one.
   *
   * @param write called per queued port write, oldest first
   * @returns how many it handed over
   */
  drainCoalesced(write: (port: number, data: Uint8Array) => void): number {
    const ring = this.#ring;
    if (ring < 0) return 0;
    const run = this.#run;
    let first = run.getUint32(ring + CR.first, true);
    const last = run.getUint32(ring + CR.last, true);
    // The kernel keeps both below the ring's size; anything else is not a ring.
    if (first === last || first >= KVM_COALESCED_MMIO_MAX || last >= KVM_COALESCED_MMIO_MAX) {
      return 0;
    }
    const bytes = this.#bytes;
    let n = 0;
    while (first !== last) {
      const e = ring + CR.coalesced_mmio + first * kvm_coalesced_mmio.size;
      const len = Math.min(run.getUint32(e + CM.len, true), 8);
      const pio = run.getUint32(e + CM.pio, true) !== 0;
      const port = run.getUint32(e + CM.phys_addr, true);
      const data = this.#coalescedViews[len];
      for (let i = 0; i < len; i++) data[i] = bytes[e + CM.data + i];
      // The entry is copied out: give it back before the write runs.
      first = (first + 1) % KVM_COALESCED_MMIO_MAX;
      run.setUint32(ring + CR.first, first, true);
      // Only port zones are registered (Vm.coalescePio).
      if (pio) {
        write(port, data);
        n++;
      }
    }
    return n;
  }

  /** @returns the kind of exit; details through the getters */
  run(): ExitKind {
    const r = libc.ioctl_u64(this.fd, this.#kvmRun, 0n);
    if (r < 0) {
      const e = errno();
      if (e === EINTR || e === EAGAIN) return ExitKind.Interrupted;
      throw new ErrnoError("KVM_RUN", e);
    }
    switch (this.#run.getUint32(R.exit_reason, true)) {
      case KVM_EXIT_IO:
        return ExitKind.Io;
      case KVM_EXIT_MMIO:
        return ExitKind.Mmio;
      case KVM_EXIT_HLT:
        return ExitKind.Hlt;
      case KVM_EXIT_INTR:
        return ExitKind.Interrupted;
      case KVM_EXIT_SHUTDOWN:
        return ExitKind.Shutdown;
      case KVM_EXIT_FAIL_ENTRY:
        return ExitKind.FailEntry;
      case KVM_EXIT_INTERNAL_ERROR:
        return ExitKind.InternalError;
      case KVM_EXIT_SYSTEM_EVENT:
        return ExitKind.SystemEvent;
      default:
        return ExitKind.Other;
    }
  }

  /** @param on immediate_exit value: KVM_RUN returns EINTR at once while set */
  setImmediateExit(on: boolean): void {
    this.#run.setUint8(R.immediate_exit, on ? 1 : 0);
  }

  /** Raw exit reason. */
  get reason(): number {
    return this.#run.getUint32(R.exit_reason, true);
  }
  /** I/O port of the last exit. */
  get ioPort(): number {
    return this.#run.getUint16(R["io.port"], true);
  }
  /** I/O access size. */
  get ioSize(): number {
    return this.#run.getUint8(R["io.size"]);
  }
  /** True for OUT. */
  get ioIsWrite(): boolean {
    return this.#run.getUint8(R["io.direction"]) === KVM_EXIT_IO_OUT;
  }
  /** Repeat count. */
  get ioCount(): number {
    return this.#run.getUint32(R["io.count"], true);
  }
  /** @returns the data of a count-1 I/O exit, a cached view */
  ioData(): Uint8Array<ArrayBuffer> {
    // The offset is within the kvm_run mapping: its low 32 bits are all of it
    // (and reading them makes no BigInt on this per-exit path).
    const off = this.#run.getUint32(R["io.data_offset"], true);
    if (off !== this.#ioOffset) {
      this.#ioOffset = off;
      this.#ioViews = [];
      for (let s = 0; s <= 8; s++) this.#ioViews.push(this.#bytes.subarray(off, off + s));
    }
    return this.#ioViews[this.ioSize];
  }
  /**
   * The data of element i of a string I/O exit (allocates: string I/O is rare).
   *
   * @param i element index < ioCount
   * @returns a view of its bytes
   */
  ioDataAt(i: number): Uint8Array<ArrayBuffer> {
    const off = this.#run.getUint32(R["io.data_offset"], true) + i * this.ioSize;
    if (off + this.ioSize > this.#bytes.length) throw new RangeError("I/O data outside kvm_run");
    return this.#bytes.subarray(off, off + this.ioSize);
  }
  /** MMIO address. */
  get mmioAddr(): number {
    // Two halves instead of a BigInt: nothing is allocated per exit.
    const at = R["mmio.phys_addr"];
    return this.#run.getUint32(at, true) + this.#run.getUint32(at + 4, true) * 0x1_0000_0000;
  }
  /** MMIO length. */
  get mmioLen(): number {
    return this.#run.getUint32(R["mmio.len"], true);
  }
  /** True for MMIO writes. */
  get mmioIsWrite(): boolean {
    return this.#run.getUint8(R["mmio.is_write"]) !== 0;
  }
  /** @returns the MMIO data bytes, a cached view */
  mmioData(): Uint8Array<ArrayBuffer> {
    const len = this.mmioLen;
    return this.#mmioViews[len <= 8 ? len : 8];
  }
  /** Hardware entry failure reason. */
  get failEntryReason(): bigint {
    return this.#run.getBigUint64(R["fail_entry.hardware_entry_failure_reason"], true);
  }
  /** Internal error sub-code. */
  get internalSuberror(): number {
    return this.#run.getUint32(R["internal.suberror"], true);
  }
  /** System event type. */
  get systemEventType(): number {
    return this.#run.getUint32(R["system_event.type"], true);
  }

  #ioctl(name: keyof typeof IOCTLS, buf: Uint8Array<ArrayBuffer>): number {
    const r = libc.ioctl_buf(this.fd, BigInt(IOCTLS[name]), buf);
    if (r < 0) throw new ErrnoError(name, errno());
    return r;
  }

  /** @returns KVM_GET_REGS */
  getRegs(): Regs {
    this.#ioctl("KVM_GET_REGS", this.#regsBuf);
    return decodeRegs(new DataView(this.#regsBuf.buffer));
  }
  /** @param regs KVM_SET_REGS */
  setRegs(regs: Regs): void {
    encodeRegs(new DataView(this.#regsBuf.buffer), regs);
    this.#ioctl("KVM_SET_REGS", this.#regsBuf);
  }
  /** @returns KVM_GET_SREGS */
  getSregs(): Sregs {
    this.#ioctl("KVM_GET_SREGS", this.#sregsBuf);
    return decodeSregs(new DataView(this.#sregsBuf.buffer));
  }
  /** @param sregs KVM_SET_SREGS (read-modify-write from getSregs) */
  setSregs(sregs: Sregs): void {
    encodeSregs(new DataView(this.#sregsBuf.buffer), sregs);
    this.#ioctl("KVM_SET_SREGS", this.#sregsBuf);
  }

  /** @param entries KVM_SET_CPUID2 */
  setCpuid(entries: readonly CpuidEntry[]): void {
    const es = kvm_cpuid_entry2.size;
    const b = new Uint8Array(kvm_cpuid2.size + entries.length * es);
    const v = new DataView(b.buffer);
    v.setUint32(kvm_cpuid2.fields.nent, entries.length, true);
    const f = kvm_cpuid_entry2.fields;
    entries.forEach((e, i) => {
      const at = kvm_cpuid2.size + i * es;
      v.setUint32(at + f.function, e.function, true);
      v.setUint32(at + f.index, e.index, true);
      v.setUint32(at + f.flags, e.flags, true);
      v.setUint32(at + f.eax, e.eax >>> 0, true);
      v.setUint32(at + f.ebx, e.ebx >>> 0, true);
      v.setUint32(at + f.ecx, e.ecx >>> 0, true);
      v.setUint32(at + f.edx, e.edx >>> 0, true);
    });
    this.#ioctl("KVM_SET_CPUID2", b);
  }

  /**
   * KVM_SET_MSRS.
   *
   * @param msrs index/value pairs
   */
  setMsrs(msrs: readonly { index: number; data: bigint }[]): void {
    const es = kvm_msr_entry.size;
    const b = new Uint8Array(kvm_msrs.size + msrs.length * es);
    const v = new DataView(b.buffer);
    v.setUint32(kvm_msrs.fields.nmsrs, msrs.length, true);
    msrs.forEach((m, i) => {
      const at = kvm_msrs.size + i * es;
      v.setUint32(at + kvm_msr_entry.fields.index, m.index, true);
      v.setBigUint64(at + kvm_msr_entry.fields.data, m.data, true);
    });
    const n = this.#ioctl("KVM_SET_MSRS", b);
    if (n !== msrs.length) {
      throw new Error(
        `KVM_SET_MSRS set ${n} of ${msrs.length} MSRs (MSR 0x${
          msrs[n].index.toString(16)
        } rejected)`,
      );
    }
  }

  /**
   * KVM_SET_FPU with the power-on x87 control word and MXCSR.
   *
   * @param fcw x87 control word (0x37f at reset)
   * @param mxcsr SSE control/status (0x1f80 at reset)
   */
  setFpu(fcw = 0x37f, mxcsr = 0x1f80): void {
    const b = new Uint8Array(kvm_fpu.size);
    const v = new DataView(b.buffer);
    v.setUint16(kvm_fpu.fields.fcw, fcw, true);
    v.setUint32(kvm_fpu.fields.mxcsr, mxcsr, true);
    this.#ioctl("KVM_SET_FPU", b);
  }

  /** @returns the LAPIC register page (KVM_GET_LAPIC) */
  getLapic(): Uint8Array<ArrayBuffer> {
    const b = new Uint8Array(kvm_lapic_state.size);
    this.#ioctl("KVM_GET_LAPIC", b);
    return b;
  }
  /** @param page KVM_SET_LAPIC */
  setLapic(page: Uint8Array<ArrayBuffer>): void {
    this.#ioctl("KVM_SET_LAPIC", page);
  }

  /** @param state KVM_SET_MP_STATE value */
  setMpState(state: number): void {
    const b = new Uint8Array(kvm_mp_state.size);
    new DataView(b.buffer).setUint32(0, state, true);
    this.#ioctl("KVM_SET_MP_STATE", b);
  }
}
