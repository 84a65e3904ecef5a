/**
 * The virtio 1.x modern PCI transport (virtio spec 4.1), split the way the
 * VMM's threads are:
 *
 * - {@link VirtioPciDevice}: configuration space and BAR registers (common
 *   config, ISR, device config, notify, MSI-X table). It runs in whichever
 *   vCPU Worker took the exit, under the big lock, over state kept in
 *   SharedArrayBuffers; rebuild it in each Worker from {@link VirtioPciDevice.state}.
 * - {@link VirtioPciBackend}: the device side on one loop thread (main loop
 *   or iothread): it owns the queues, runs the device model and injects
 *   interrupts. Kicks reach it as eventfds (KVM ioeventfd) or as plain
 *   {@link VirtioPciBackend.notify} calls.
 *
 * @module
 */
import type { GuestMemory } from "../../memory/guest_memory.ts";
import type { EventLoop } from "../../mainloop/types.ts";
import { eventFdRead, eventFdWrite } from "../../sys/fd.ts";
import {
  PCI_CAP_ID_VNDR,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_DEVICE_ID_VIRTIO_MODERN_BASE,
  PCI_VENDOR_ID_REDHAT_QUMRANET,
} from "../pci/constants.ts";
import { MsixState } from "../pci/msix.ts";
import { PciDevice } from "../pci/pci_device.ts";
import {
  featureBit,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_VERSION_1,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_CAP_COMMON_CFG,
  VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_ISR_CFG,
  VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_PCI_COMMON_CFG_SIZE,
  VIRTIO_PCI_COMMON_CFGGENERATION,
  VIRTIO_PCI_COMMON_DF,
  VIRTIO_PCI_COMMON_DFSELECT,
  VIRTIO_PCI_COMMON_GF,
  VIRTIO_PCI_COMMON_GFSELECT,
  VIRTIO_PCI_COMMON_MSIX,
  VIRTIO_PCI_COMMON_NUMQ,
  VIRTIO_PCI_COMMON_Q_DESCLO,
  VIRTIO_PCI_COMMON_Q_ENABLE,
  VIRTIO_PCI_COMMON_Q_MSIX,
  VIRTIO_PCI_COMMON_Q_NOFF,
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_STATUS,
  VIRTIO_PCI_ISR_CONFIG,
  VIRTIO_PCI_ISR_QUEUE,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from "./constants.ts";
import type { InterruptSink, VirtioContext, VirtioDevice } from "./device.ts";
import { SplitQueue, type VirtioViolation, VirtqueueError } from "./queue.ts";

/** The BAR holding every virtio structure (64-bit memory, uses BARs 0-1). */
export const VIRTIO_PCI_BAR = 0;
/** Size of that BAR. */
export const VIRTIO_PCI_BAR_SIZE = 0x8000;
/** Offset of the common configuration in the BAR. */
export const VIRTIO_PCI_COMMON_OFFSET = 0x0000;
/** Offset of the ISR byte. */
export const VIRTIO_PCI_ISR_OFFSET = 0x1000;
/** Offset of the device-specific configuration. */
export const VIRTIO_PCI_DEVICE_OFFSET = 0x2000;
/** Offset of the notification area (queue q at +4q). */
export const VIRTIO_PCI_NOTIFY_OFFSET = 0x3000;
/** notify_off_multiplier: one dword per queue, so each can have an ioeventfd. */
export const VIRTIO_PCI_NOTIFY_MULTIPLIER = 4;
/** Offset of the MSI-X table. */
export const VIRTIO_PCI_MSIX_TABLE_OFFSET = 0x4000;
/** Offset of the MSI-X PBA. */
export const VIRTIO_PCI_MSIX_PBA_OFFSET = 0x6000;
/** PCI subsystem id used for modern virtio devices (QEMU's choice). */
export const VIRTIO_PCI_SUBSYSTEM_ID = 0x1100;

// Words of the shared transport state.
const W_STATUS = 0;
const W_DFSELECT = 1;
const W_GFSELECT = 2;
const W_GF_LO = 3;
const W_GF_HI = 4;
const W_MSIX_CONFIG = 5;
const W_CONFIG_GEN = 6;
const W_QSELECT = 7;
const W_ISR = 8;
const W_RESET_PENDING = 9;
const W_QUEUES = 16;
const Q_STRIDE = 9;
const Q_SIZE = 0;
const Q_MSIX = 1;
const Q_ENABLE = 2;
const Q_DESC = 3;
const Q_AVAIL = 5;
const Q_USED = 7;

/**
 * How the register side tells the device side that something happened.
 * In-thread (tests, or a device living on the vCPU's own loop) this is the
 * {@link VirtioPciBackend} itself; across threads the VMM makes it write an
 * eventfd that the backend's loop polls.
 */
export interface VirtioTransportLink {
  /** The driver wrote queue `index`'s notify register (no ioeventfd). */
  notify(index: number): void;
  /** device_status changed in a way the backend must act on (reset, DRIVER_OK, FAILED). */
  statusChanged(): void;
}

/**
 * The cross-thread {@link VirtioTransportLink}: each event becomes an
 * eventfd write that the backend's loop polls (see
 * {@link VirtioPciBackend.attach}). The notify fds are the same eventfds the
 * VMM registers with KVM_IOEVENTFD, so the no-ioeventfd path and the
 * ioeventfd path wake the backend the same way. Plain data: build one in
 * each vCPU Worker from the fd numbers.
 *
 * @example
 * ```ts ignore
 * transport.link = new EventFdLink({ notifyFds: [kickFd], controlFd });
 * ```
 */
export class EventFdLink implements VirtioTransportLink {
  readonly #notifyFds: readonly number[];
  readonly #controlFd: number;

  /** @param fds one kick eventfd per queue, and the status-change eventfd */
  constructor(fds: { notifyFds: readonly number[]; controlFd: number }) {
    this.#notifyFds = fds.notifyFds;
    this.#controlFd = fds.controlFd;
  }

  /** @param index queue index */
  notify(index: number): void {
    const fd = this.#notifyFds[index];
    if (fd !== undefined) eventFdWrite(fd);
  }

  /** Wakes the backend to look at device_status. */
  statusChanged(): void {
    eventFdWrite(this.#controlFd);
  }
}

/** The static shape of a virtio PCI function. */
export interface VirtioPciSpec {
  /** Virtio device id. */
  deviceType: number;
  /** Number of queues. */
  numQueues: number;
  /** Maximum queue size. */
  queueMaxSize: number;
  /** Features offered (VIRTIO_F_VERSION_1 is added). */
  deviceFeatures: bigint;
  /** Bytes of device configuration. */
  configSize: number;
  /** PCI class code. */
  pciClass: number;
  /** MSI-X vectors (default: one per queue plus one for config). */
  msixVectors?: number;
}

/**
 * The transport shape a device model needs.
 *
 * @param device the device model
 * @returns its {@link VirtioPciSpec}
 * @example
 * ```ts ignore
 * const transport = new VirtioPciDevice(virtioPciSpecOf(blk));
 * ```
 */
export function virtioPciSpecOf(device: VirtioDevice): VirtioPciSpec {
  return {
    deviceType: device.deviceType,
    numQueues: device.numQueues,
    queueMaxSize: device.queueMaxSize,
    deviceFeatures: device.deviceFeatures,
    configSize: device.configSize,
    pciClass: device.pciClass,
  };
}

/** Shared state of a {@link VirtioPciDevice}, plain data for postMessage. */
export interface VirtioPciState {
  /** PCI configuration space. */
  pci: SharedArrayBuffer;
  /** Transport registers and device config bytes. */
  regs: SharedArrayBuffer;
  /** MSI-X table and PBA. */
  msix: SharedArrayBuffer;
}

/**
 * The virtio-pci register side. Its BAR 0 device goes on the MMIO bus at
 * {@link PciDevice.barAddress}(0); ioeventfds belong at
 * `barAddress(0) + VIRTIO_PCI_NOTIFY_OFFSET + 4 * q`.
 *
 * @example
 * ```ts
 * import { VirtioPciDevice } from "./pci.ts";
 * const dev = new VirtioPciDevice({
 *   deviceType: 2, numQueues: 1, queueMaxSize: 256, deviceFeatures: 0n,
 *   configSize: 8, pciClass: 0x010000,
 * });
 * console.log(dev.configU16(2).toString(16)); // 1042
 * ```
 */
export class VirtioPciDevice extends PciDevice {
  /** The spec this function was built from. */
  readonly spec: Readonly<VirtioPciSpec>;
  /** MSI-X capability and table. */
  readonly msix: MsixState;
  /** Offered features, VERSION_1 included. */
  readonly offeredFeatures: bigint;
  readonly #regs: Int32Array;
  readonly #config: Uint8Array;
  /** See {@link VirtioTransportLink}; null completes resets at once. */
  link: VirtioTransportLink | null = null;
  /** Where INTx de-assertion goes when the guest reads ISR. */
  interrupt: InterruptSink | null = null;

  /**
   * @param spec device shape
   * @param options `state` from another Worker's instance
   */
  constructor(spec: VirtioPciSpec, options: { state?: VirtioPciState } = {}) {
    super({
      vendorId: PCI_VENDOR_ID_REDHAT_QUMRANET,
      deviceId: PCI_DEVICE_ID_VIRTIO_MODERN_BASE + spec.deviceType,
      classCode: spec.pciClass,
      revision: 1,
      subsystemVendorId: PCI_VENDOR_ID_REDHAT_QUMRANET,
      subsystemId: VIRTIO_PCI_SUBSYSTEM_ID,
      interruptPin: 1,
    }, { state: options.state?.pci });
    if (spec.numQueues < 1 || spec.numQueues > 1024) {
      throw new RangeError(`Invalid queue count ${spec.numQueues}`);
    }
    if (spec.configSize > 0x1000) throw new RangeError("Device configuration too large");
    this.spec = { ...spec };
    this.offeredFeatures = spec.deviceFeatures | featureBit(VIRTIO_F_VERSION_1);
    const regBytes = 4 * (W_QUEUES + Q_STRIDE * spec.numQueues);
    const fresh = options.state === undefined;
    const regs = options.state?.regs ?? new SharedArrayBuffer(regBytes + spec.configSize);
    this.#regs = new Int32Array(regs, 0, regBytes / 4);
    this.#config = new Uint8Array(regs, regBytes, spec.configSize);
    this.addBar(VIRTIO_PCI_BAR, { size: VIRTIO_PCI_BAR_SIZE, kind: "mem64" });
    this.#addVirtioCap(
      VIRTIO_PCI_CAP_COMMON_CFG,
      VIRTIO_PCI_COMMON_OFFSET,
      VIRTIO_PCI_COMMON_CFG_SIZE,
    );
    this.#addVirtioCap(VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFFSET, 4);
    this.#addVirtioCap(VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFFSET, spec.configSize);
    this.#addVirtioCap(
      VIRTIO_PCI_CAP_NOTIFY_CFG,
      VIRTIO_PCI_NOTIFY_OFFSET,
      VIRTIO_PCI_NOTIFY_MULTIPLIER * spec.numQueues,
      VIRTIO_PCI_NOTIFY_MULTIPLIER,
    );
    const vectors = spec.msixVectors ?? spec.numQueues + 1;
    if (vectors * 16 > VIRTIO_PCI_MSIX_PBA_OFFSET - VIRTIO_PCI_MSIX_TABLE_OFFSET) {
      throw new RangeError(`Too many MSI-X vectors ${vectors}`);
    }
    this.msix = new MsixState(this, {
      vectors,
      bar: VIRTIO_PCI_BAR,
      tableOffset: VIRTIO_PCI_MSIX_TABLE_OFFSET,
      pbaOffset: VIRTIO_PCI_MSIX_PBA_OFFSET,
      state: options.state?.msix,
    });
    if (fresh) this.#resetRegisters();
  }

  /** Shared state of all parts, for rebuilding this function in another Worker. */
  get sharedState(): VirtioPciState {
    return {
      pci: super.state(),
      regs: this.#regs.buffer as SharedArrayBuffer,
      msix: this.msix.state(),
    };
  }

  /** The device-specific configuration bytes (the device fills them). */
  get deviceConfig(): Uint8Array {
    return this.#config;
  }

  #addVirtioCap(type: number, offset: number, length: number, multiplier?: number): void {
    const body = new Uint8Array(multiplier === undefined ? 14 : 18);
    const v = new DataView(body.buffer);
    body[0] = body.length + 2; // cap_len
    body[1] = type;
    body[2] = VIRTIO_PCI_BAR;
    v.setUint32(6, offset, true);
    v.setUint32(10, length, true);
    if (multiplier !== undefined) v.setUint32(14, multiplier, true);
    this.addCapability(PCI_CAP_ID_VNDR, body);
  }

  #resetRegisters(): void {
    const r = this.#regs;
    for (let i = 0; i < r.length; i++) {
      if (i !== W_STATUS && i !== W_RESET_PENDING && i !== W_CONFIG_GEN) Atomics.store(r, i, 0);
    }
    Atomics.store(r, W_MSIX_CONFIG, VIRTIO_MSI_NO_VECTOR);
    for (let q = 0; q < this.spec.numQueues; q++) {
      const b = W_QUEUES + Q_STRIDE * q;
      r[b + Q_SIZE] = this.spec.queueMaxSize;
      r[b + Q_MSIX] = VIRTIO_MSI_NO_VECTOR;
    }
  }

  /** Current device_status. */
  get status(): number {
    return Atomics.load(this.#regs, W_STATUS);
  }

  /** The features the driver wrote. */
  get driverFeatures(): bigint {
    const r = this.#regs;
    return (BigInt(r[W_GF_HI] >>> 0) << 32n) | BigInt(r[W_GF_LO] >>> 0);
  }

  /** Whether a reset is waiting for the backend to acknowledge it. */
  get resetPending(): boolean {
    return Atomics.load(this.#regs, W_RESET_PENDING) !== 0;
  }

  /**
   * Queue registers as the driver programmed them.
   *
   * @param q queue index
   * @returns size, enable, msix vector and ring addresses
   */
  queueRegs(q: number): {
    size: number;
    enabled: boolean;
    vector: number;
    desc: number;
    avail: number;
    used: number;
  } {
    const r = this.#regs;
    const b = W_QUEUES + Q_STRIDE * q;
    const addr = (o: number) => (r[b + o + 1] >>> 0) * 0x1_0000_0000 + (r[b + o] >>> 0);
    return {
      size: r[b + Q_SIZE],
      enabled: Atomics.load(r, b + Q_ENABLE) === 1,
      vector: r[b + Q_MSIX],
      desc: addr(Q_DESC),
      avail: addr(Q_AVAIL),
      used: addr(Q_USED),
    };
  }

  /**
   * The MSI-X vector for queue q (VIRTIO_MSI_NO_VECTOR if none).
   *
   * @param q queue index
   * @returns the vector
   */
  queueVector(q: number): number {
    return this.#regs[W_QUEUES + Q_STRIDE * q + Q_MSIX];
  }

  /** The MSI-X vector for configuration changes. */
  get configVector(): number {
    return this.#regs[W_MSIX_CONFIG];
  }

  /**
   * Sets ISR bits and raises INTx, unless INTx is disabled in the command
   * register. Any thread.
   *
   * @param bits VIRTIO_PCI_ISR_* bits
   * @param sink where the line goes
   */
  raiseIsr(bits: number, sink: InterruptSink): void {
    Atomics.or(this.#regs, W_ISR, bits);
    if (!(this.configU16(PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE)) sink.intx(true);
  }

  /**
   * Sets DEVICE_NEEDS_RESET (device side, any thread).
   */
  setNeedsReset(): void {
    Atomics.or(this.#regs, W_STATUS, VIRTIO_CONFIG_S_NEEDS_RESET);
  }

  /**
   * Completes a pending reset (device side): status reads 0 from now on.
   */
  ackReset(): void {
    Atomics.store(this.#regs, W_STATUS, 0);
    Atomics.store(this.#regs, W_RESET_PENDING, 0);
  }

  /** Bumps config_generation (device config changed). */
  bumpConfigGeneration(): void {
    Atomics.add(this.#regs, W_CONFIG_GEN, 1);
  }

  protected override configWritten(offset: number, len: number): void {
    this.msix.configWritten(offset, len);
  }

  override barRead(bar: number, offset: number, data: Uint8Array): void {
    const len = data.length;
    if (bar !== VIRTIO_PCI_BAR) {
      data.fill(0);
    } else if (offset < VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_CFG_SIZE) {
      putLe(data, this.#commonRead(offset, len));
    } else if (offset >= VIRTIO_PCI_ISR_OFFSET && offset < VIRTIO_PCI_ISR_OFFSET + 4) {
      data.fill(0);
      if (offset === VIRTIO_PCI_ISR_OFFSET) {
        const isr = Atomics.exchange(this.#regs, W_ISR, 0);
        data[0] = isr;
        if (isr !== 0 && this.interrupt) this.interrupt.intx(false);
      }
    } else if (
      offset >= VIRTIO_PCI_DEVICE_OFFSET &&
      offset + len <= VIRTIO_PCI_DEVICE_OFFSET + this.spec.configSize
    ) {
      data.set(
        this.#config.subarray(
          offset - VIRTIO_PCI_DEVICE_OFFSET,
          offset - VIRTIO_PCI_DEVICE_OFFSET + len,
        ),
      );
    } else if (!this.msix.read(offset, data)) {
      data.fill(0);
    }
  }

  override barWrite(bar: number, offset: number, data: Uint8Array): void {
    if (bar !== VIRTIO_PCI_BAR) return;
    if (offset < VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_CFG_SIZE) {
      this.#commonWrite(offset, data.length, getLe(data));
    } else if (
      offset >= VIRTIO_PCI_NOTIFY_OFFSET &&
      offset < VIRTIO_PCI_NOTIFY_OFFSET + VIRTIO_PCI_NOTIFY_MULTIPLIER * this.spec.numQueues
    ) {
      const q = (offset - VIRTIO_PCI_NOTIFY_OFFSET) / VIRTIO_PCI_NOTIFY_MULTIPLIER;
      if (Number.isInteger(q) && this.link) this.link.notify(q);
    } else {
      this.msix.write(offset, data);
    }
    // Device config is read-only for the devices here; ISR is read-only.
  }

  #selectedQueue(): number {
    const q = this.#regs[W_QSELECT];
    return q < this.spec.numQueues ? W_QUEUES + Q_STRIDE * q : -1;
  }

  #commonRead(offset: number, len: number): number {
    const r = this.#regs;
    const qb = this.#selectedQueue();
    switch (offset) {
      case VIRTIO_PCI_COMMON_DFSELECT:
        return r[W_DFSELECT] >>> 0;
      case VIRTIO_PCI_COMMON_DF: {
        const sel = r[W_DFSELECT] >>> 0;
        if (sel > 1) return 0;
        return Number((this.offeredFeatures >> BigInt(32 * sel)) & 0xffff_ffffn);
      }
      case VIRTIO_PCI_COMMON_GFSELECT:
        return r[W_GFSELECT] >>> 0;
      case VIRTIO_PCI_COMMON_GF: {
        const sel = r[W_GFSELECT];
        return sel === 0 ? r[W_GF_LO] >>> 0 : sel === 1 ? r[W_GF_HI] >>> 0 : 0;
      }
      case VIRTIO_PCI_COMMON_MSIX:
        return r[W_MSIX_CONFIG];
      case VIRTIO_PCI_COMMON_NUMQ:
        return this.spec.numQueues;
      case VIRTIO_PCI_COMMON_STATUS:
        return len === 1 ? Atomics.load(r, W_STATUS) & 0xff : 0;
      case VIRTIO_PCI_COMMON_CFGGENERATION:
        return Atomics.load(r, W_CONFIG_GEN) & 0xff;
      case VIRTIO_PCI_COMMON_Q_SELECT:
        return r[W_QSELECT];
      case VIRTIO_PCI_COMMON_Q_SIZE:
        return qb < 0 ? 0 : r[qb + Q_SIZE];
      case VIRTIO_PCI_COMMON_Q_MSIX:
        return qb < 0 ? VIRTIO_MSI_NO_VECTOR : r[qb + Q_MSIX];
      case VIRTIO_PCI_COMMON_Q_ENABLE:
        return qb < 0 ? 0 : Atomics.load(r, qb + Q_ENABLE);
      case VIRTIO_PCI_COMMON_Q_NOFF:
        return qb < 0 ? 0 : r[W_QSELECT];
    }
    if (qb >= 0 && offset >= VIRTIO_PCI_COMMON_Q_DESCLO && offset < VIRTIO_PCI_COMMON_CFG_SIZE) {
      const rel = offset - VIRTIO_PCI_COMMON_Q_DESCLO;
      if (rel % 4 !== 0) return 0;
      const w = qb + Q_DESC + rel / 4;
      if (len === 8) return (r[w + 1] >>> 0) * 0x1_0000_0000 + (r[w] >>> 0);
      return r[w] >>> 0;
    }
    return 0;
  }

  #commonWrite(offset: number, len: number, value: number): void {
    const r = this.#regs;
    const qb = this.#selectedQueue();
    const status = Atomics.load(r, W_STATUS);
    switch (offset) {
      case VIRTIO_PCI_COMMON_DFSELECT:
        r[W_DFSELECT] = value | 0;
        return;
      case VIRTIO_PCI_COMMON_GFSELECT:
        r[W_GFSELECT] = value | 0;
        return;
      case VIRTIO_PCI_COMMON_GF: {
        if (status & VIRTIO_CONFIG_S_FEATURES_OK) return;
        const sel = r[W_GFSELECT];
        if (sel === 0) r[W_GF_LO] = value | 0;
        else if (sel === 1) r[W_GF_HI] = value | 0;
        return;
      }
      case VIRTIO_PCI_COMMON_MSIX:
        r[W_MSIX_CONFIG] = this.#checkVector(value);
        return;
      case VIRTIO_PCI_COMMON_STATUS:
        if (len === 1) this.#writeStatus(value & 0xff);
        return;
      case VIRTIO_PCI_COMMON_Q_SELECT:
        r[W_QSELECT] = value & 0xffff;
        return;
    }
    if (qb < 0 || Atomics.load(r, qb + Q_ENABLE) === 1) {
      // Queue registers are frozen once enabled (spec 4.1.4.3.2), except the vector.
      if (qb >= 0 && offset === VIRTIO_PCI_COMMON_Q_MSIX) r[qb + Q_MSIX] = this.#checkVector(value);
      return;
    }
    switch (offset) {
      case VIRTIO_PCI_COMMON_Q_SIZE:
        r[qb + Q_SIZE] = value & 0xffff;
        return;
      case VIRTIO_PCI_COMMON_Q_MSIX:
        r[qb + Q_MSIX] = this.#checkVector(value);
        return;
      case VIRTIO_PCI_COMMON_Q_ENABLE:
        if (value === 1) Atomics.store(r, qb + Q_ENABLE, 1);
        return;
    }
    if (offset >= VIRTIO_PCI_COMMON_Q_DESCLO && offset < VIRTIO_PCI_COMMON_CFG_SIZE) {
      const rel = offset - VIRTIO_PCI_COMMON_Q_DESCLO;
      if (rel % 4 !== 0) return;
      const w = qb + Q_DESC + rel / 4;
      if (len === 8) {
        r[w] = value % 0x1_0000_0000;
        r[w + 1] = Math.floor(value / 0x1_0000_0000);
      } else if (len === 4) r[w] = value;
    }
  }

  #checkVector(v: number): number {
    return v < this.msix.vectors ? v : VIRTIO_MSI_NO_VECTOR;
  }

  #writeStatus(value: number): void {
    const r = this.#regs;
    if (value === 0) {
      if (Atomics.load(r, W_STATUS) === 0 && !this.resetPending) {
        // Already in reset: nothing for the device side to do, and nothing to wait for.
        this.#resetRegisters();
        return;
      }
      this.#resetRegisters();
      if (this.link) {
        Atomics.store(r, W_RESET_PENDING, 1);
        this.link.statusChanged();
      } else this.ackReset();
      return;
    }
    // The driver must wait for a reset to complete (status reads 0) first.
    if (this.resetPending) return;
    const old = Atomics.load(r, W_STATUS);
    let v = value | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
    if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
      const drv = this.driverFeatures;
      const ok = (drv & ~this.offeredFeatures) === 0n &&
        (drv & featureBit(VIRTIO_F_VERSION_1)) !== 0n;
      if (!ok) v &= ~VIRTIO_CONFIG_S_FEATURES_OK;
    }
    if ((v & VIRTIO_CONFIG_S_DRIVER_OK) && !(v & VIRTIO_CONFIG_S_FEATURES_OK)) {
      v &= ~VIRTIO_CONFIG_S_DRIVER_OK;
    }
    Atomics.store(r, W_STATUS, v);
    const changed = v ^ old;
    if (changed & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED)) this.link?.statusChanged();
  }
}

function putLe(data: Uint8Array, value: number): void {
  let v = value;
  for (let i = 0; i < data.length; i++) {
    data[i] = v % 256;
    v = Math.floor(v / 256);
  }
}

function getLe(data: Uint8Array): number {
  let v = 0;
  for (let i = data.length - 1; i >= 0; i--) v = v * 256 + data[i];
  return v;
}

/**
 * The device side of a virtio-pci function, living on one loop thread: it
 * builds the queues at DRIVER_OK, runs the device model on kicks, routes
 * interrupts to MSI-X or INTx, and turns any guest misbehaviour into
 * DEVICE_NEEDS_RESET.
 *
 * @example
 * ```ts ignore
 * const backend = new VirtioPciBackend({ transport, device, mem, interrupt });
 * transport.link = backend; // in-thread: kicks and status changes are direct calls
 * ```
 */
export class VirtioPciBackend implements VirtioTransportLink, VirtioContext {
  readonly #transport: VirtioPciDevice;
  readonly #device: VirtioDevice;
  readonly #interrupt: InterruptSink;
  readonly #queues: SplitQueue[];
  readonly #active: (SplitQueue | null)[];
  #features = 0n;
  #activated = false;
  #broken = false;
  #loggedBroken = false;
  #resetting = false;
  readonly #ackReset = () => {
    this.#resetting = false;
    this.#transport.ackReset();
  };
  readonly #log: (message: string) => void;
  readonly #onBroken: ((violation: VirtioViolation | null, cause: unknown) => void) | null;
  /** Guest RAM. */
  readonly mem: GuestMemory;

  /**
   * @param options the transport (this thread's instance), the device
   *   model, guest RAM, the interrupt sink, where the one line about a
   *   broken device goes (default console.error), and `onBroken`, told of
   *   every time the device breaks: the guest's named violation, or null
   *   for anything else (a device bug; tests and fuzzers fail on those)
   */
  constructor(
    options: {
      transport: VirtioPciDevice;
      device: VirtioDevice;
      mem: GuestMemory;
      interrupt: InterruptSink;
      log?: (message: string) => void;
      onBroken?: (violation: VirtioViolation | null, cause: unknown) => void;
    },
  ) {
    const { transport, device, mem, interrupt } = options;
    this.#log = options.log ?? console.error;
    this.#onBroken = options.onBroken ?? null;
    this.#transport = transport;
    this.#device = device;
    this.#interrupt = interrupt;
    this.mem = mem;
    transport.msix.hooks.deliver = (v: number) => interrupt.msix(v);
    transport.interrupt ??= interrupt;
    this.#queues = [];
    this.#active = [];
    for (let i = 0; i < device.numQueues; i++) {
      this.#queues.push(new SplitQueue(mem, device.queueMaxSize));
      this.#active.push(null);
    }
    device.initConfig(transport.deviceConfig);
  }

  /** Queues by index (null until activated or when disabled). */
  get queues(): readonly (SplitQueue | null)[] {
    return this.#active;
  }
  /** Negotiated features. */
  get features(): bigint {
    return this.#features;
  }
  /** Whether the device is marked broken. */
  get broken(): boolean {
    return this.#broken;
  }
  /** Whether DRIVER_OK was processed and queues are live. */
  get activated(): boolean {
    return this.#activated;
  }

  /**
   * Registers the queues' kick eventfds (KVM ioeventfds) and, for a
   * register side in other threads, the status-change eventfd of its
   * {@link EventFdLink}, on the loop.
   *
   * @param loop the loop this backend runs on
   * @param notifyFds one eventfd per queue
   * @param controlFd the EventFdLink's status eventfd, if any
   */
  attach(loop: EventLoop, notifyFds: readonly number[], controlFd?: number): void {
    if (controlFd !== undefined) {
      loop.setFdHandler(controlFd, {
        read: () => {
          eventFdRead(controlFd);
          this.statusChanged();
        },
      });
    }
    notifyFds.forEach((fd, q) => {
      loop.setFdHandler(fd, {
        read: () => {
          eventFdRead(fd);
          this.notify(q);
        },
      });
    });
  }

  /**
   * A kick on queue `index` (from an eventfd or the notify register).
   *
   * @param index queue index
   */
  notify(index: number): void {
    if (!this.#activated || this.#broken || !this.#active[index]) return;
    try {
      this.#device.processQueue(index);
    } catch (e) {
      this.#fail(e);
    }
  }

  /** Acts on device_status: reset, DRIVER_OK, FAILED. */
  statusChanged(): void {
    const t = this.#transport;
    if (t.resetPending) {
      if (this.#resetting) return;
      this.#resetting = true;
      this.#reset();
      this.#device.reset(this.#ackReset);
      return;
    }
    const status = t.status;
    if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !this.#activated && !this.#broken) {
      this.#activate();
    }
  }

  #reset(): void {
    this.#activated = false;
    this.#broken = false;
    this.#loggedBroken = false;
    this.#features = 0n;
    for (let i = 0; i < this.#queues.length; i++) {
      this.#queues[i].reset();
      this.#active[i] = null;
    }
  }

  #activate(): void {
    const t = this.#transport;
    const features = t.driverFeatures;
    this.#features = features;
    try {
      for (let i = 0; i < this.#queues.length; i++) {
        const r = t.queueRegs(i);
        if (!r.enabled) continue;
        this.#queues[i].configure({
          size: r.size,
          desc: r.desc,
          avail: r.avail,
          used: r.used,
          eventIdx: (features & featureBit(VIRTIO_RING_F_EVENT_IDX)) !== 0n,
          indirect: (features & featureBit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0n,
        });
        this.#active[i] = this.#queues[i];
      }
      this.#activated = true;
      this.#device.activate(this);
    } catch (e) {
      this.#fail(e);
      return;
    }
    // A kick may have reached this loop before the DRIVER_OK event did.
    for (let i = 0; i < this.#active.length; i++) this.notify(i);
  }

  #fail(e: unknown): void {
    this.markBroken(e instanceof Error ? e.message : String(e), e);
  }

  /**
   * Interrupts for queue `index` if the driver wants it.
   *
   * @param index queue index
   */
  signalUsed(index: number): void {
    const q = this.#active[index];
    if (!q || !q.needsInterrupt()) return;
    const t = this.#transport;
    if (t.msix.enabled) {
      const v = t.queueVector(index);
      if (v !== VIRTIO_MSI_NO_VECTOR) t.msix.signal(v);
    } else t.raiseIsr(VIRTIO_PCI_ISR_QUEUE, this.#interrupt);
  }

  /** Sends a configuration-change interrupt. */
  signalConfig(): void {
    const t = this.#transport;
    if (t.msix.enabled) {
      const v = t.configVector;
      if (v !== VIRTIO_MSI_NO_VECTOR) t.msix.signal(v);
    } else t.raiseIsr(VIRTIO_PCI_ISR_CONFIG, this.#interrupt);
  }

  /**
   * Marks the device broken: DEVICE_NEEDS_RESET, one log line, no more
   * queue processing until the driver resets it.
   *
   * @param reason what went wrong
   * @param cause the error caught: a VirtqueueError names the guest's
   *   violation; any other error is reported as a device error
   */
  markBroken(reason: string, cause?: unknown): void {
    const violation = cause instanceof VirtqueueError ? cause.violation : null;
    const guest = cause === undefined || violation !== null;
    this.#broken = true;
    this.#transport.setNeedsReset();
    this.#onBroken?.(violation, cause);
    if (!this.#loggedBroken) {
      this.#loggedBroken = true;
      const what = guest ? reason : `Device error: ${reason}`;
      this.#log(`virtio device ${this.#device.deviceType}: ${what}; needs reset`);
    }
    this.signalConfig();
  }
}
