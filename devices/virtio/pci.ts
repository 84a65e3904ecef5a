/**
 * The virtio 1.x modern PCI transport's register side (virtio spec 4.1):
 * configuration space and BAR registers (common config, ISR, device config,
 * notify, MSI-X table). It runs in whichever vCPU Worker took the exit,
 * under the big lock, over shared {@link VirtioPciState}; each thread builds
 * its instance wired once at construction. The device side is pci_backend.ts.
 *
 * @module
 */
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
} from "./constants.ts";
import type { InterruptSink } from "./device.ts";
import { applyConfigSelect } from "./config_select.ts";
import {
  getLe,
  putLe,
  VIRTIO_PCI_BAR,
  VIRTIO_PCI_BAR_SIZE,
  VIRTIO_PCI_COMMON_OFFSET,
  VIRTIO_PCI_DEVICE_OFFSET,
  VIRTIO_PCI_ISR_OFFSET,
  VIRTIO_PCI_MSIX_PBA_OFFSET,
  VIRTIO_PCI_MSIX_TABLE_OFFSET,
  VIRTIO_PCI_NOTIFY_MULTIPLIER,
  VIRTIO_PCI_NOTIFY_OFFSET,
  VIRTIO_PCI_SUBSYSTEM_ID,
  type VirtioPciOptions,
  type VirtioPciSpec,
  type VirtioPciState,
  type VirtioTransportLink,
} from "./pci_layout.ts";

import * as S from "./_pci_state_words.ts";

export * from "./pci_layout.ts";

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
  readonly link: VirtioTransportLink | null;
  /** Where this function's interrupts go (MSI-X vectors and the INTx line). */
  readonly interrupt: InterruptSink | null;

  /**
   * Builds this thread's instance of a function.
   *
   * @param spec device shape
   * @param options its wiring, given once (see {@link VirtioPciOptions})
   */
  constructor(spec: VirtioPciSpec, options: VirtioPciOptions = {}) {
    super({
      vendorId: PCI_VENDOR_ID_REDHAT_QUMRANET,
      deviceId: PCI_DEVICE_ID_VIRTIO_MODERN_BASE + spec.deviceType,
      classCode: spec.pciClass,
      revision: 1,
      subsystemVendorId: PCI_VENDOR_ID_REDHAT_QUMRANET,
      subsystemId: VIRTIO_PCI_SUBSYSTEM_ID,
      interruptPin: 1,
    }, { state: options.state?.pci, onBarRemap: options.onBarRemap });
    this.link = options.link ?? null;
    const sink = this.interrupt = options.interrupt ?? null;
    if (spec.numQueues < 1 || spec.numQueues > 1024) {
      throw new RangeError(`Invalid queue count ${spec.numQueues}`);
    }
    if (spec.configSize > 0x1000) throw new RangeError("Device configuration too large");
    this.spec = { ...spec };
    this.offeredFeatures = spec.deviceFeatures | featureBit(VIRTIO_F_VERSION_1);
    const regBytes = 4 * (S.W_QUEUES + S.Q_STRIDE * spec.numQueues);
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
    // Only devices with a config have the capability: Linux fails the probe
    // of a zero-length one (virtio-rng has none).
    if (spec.configSize > 0) {
      this.#addVirtioCap(VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFFSET, spec.configSize);
    }
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
      hooks: {
        deliver: sink ? (v: number) => sink.msix(v) : () => {},
        vectorChanged: options.msix?.vectorChanged,
        routesChanged: options.msix?.routesChanged,
        vectorGate: options.msix?.vectorGate,
        collectMasked: options.msix?.collectMasked,
      },
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
      if (i !== S.W_STATUS && i !== S.W_RESET_PENDING && i !== S.W_CONFIG_GEN) {
        Atomics.store(r, i, 0);
      }
    }
    Atomics.store(r, S.W_MSIX_CONFIG, VIRTIO_MSI_NO_VECTOR);
    for (let q = 0; q < this.spec.numQueues; q++) {
      const b = S.W_QUEUES + S.Q_STRIDE * q;
      r[b + S.Q_SIZE] = this.spec.queueMaxSize;
      r[b + S.Q_MSIX] = VIRTIO_MSI_NO_VECTOR;
    }
  }

  /** Current device_status. */
  get status(): number {
    return Atomics.load(this.#regs, S.W_STATUS);
  }

  /** The features the driver wrote. */
  get driverFeatures(): bigint {
    const r = this.#regs;
    return (BigInt(r[S.W_GF_HI] >>> 0) << 32n) | BigInt(r[S.W_GF_LO] >>> 0);
  }

  /** Whether a reset is waiting for the backend to acknowledge it. */
  get resetPending(): boolean {
    return Atomics.load(this.#regs, S.W_RESET_PENDING) !== 0;
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
    const b = S.W_QUEUES + S.Q_STRIDE * q;
    const addr = (o: number) => (r[b + o + 1] >>> 0) * 0x1_0000_0000 + (r[b + o] >>> 0);
    return {
      size: r[b + S.Q_SIZE],
      enabled: Atomics.load(r, b + S.Q_ENABLE) === 1,
      vector: r[b + S.Q_MSIX],
      desc: addr(S.Q_DESC),
      avail: addr(S.Q_AVAIL),
      used: addr(S.Q_USED),
    };
  }

  /**
   * The MSI-X vector for queue q (VIRTIO_MSI_NO_VECTOR if none).
   *
   * @param q queue index
   * @returns the vector
   */
  queueVector(q: number): number {
    return this.#regs[S.W_QUEUES + S.Q_STRIDE * q + S.Q_MSIX];
  }

  /** The MSI-X vector for configuration changes. */
  get configVector(): number {
    return this.#regs[S.W_MSIX_CONFIG];
  }

  /**
   * Sets ISR bits and raises INTx, unless INTx is disabled in the command
   * register. Any thread.
   *
   * @param bits VIRTIO_PCI_ISR_* bits
   * @param sink where the line goes
   */
  raiseIsr(bits: number, sink: InterruptSink): void {
    Atomics.or(this.#regs, S.W_ISR, bits);
    if (!(this.configU16(PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE)) sink.intx(true);
  }

  /**
   * Sets DEVICE_NEEDS_RESET (device side, any thread).
   */
  setNeedsReset(): void {
    Atomics.or(this.#regs, S.W_STATUS, VIRTIO_CONFIG_S_NEEDS_RESET);
  }

  /**
   * Completes a pending reset (device side): status reads 0 from now on.
   */
  ackReset(): void {
    Atomics.store(this.#regs, S.W_STATUS, 0);
    Atomics.store(this.#regs, S.W_RESET_PENDING, 0);
  }

  /** Bumps config_generation (device config changed). */
  bumpConfigGeneration(): void {
    Atomics.add(this.#regs, S.W_CONFIG_GEN, 1);
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
        const isr = Atomics.exchange(this.#regs, S.W_ISR, 0);
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
    } else if (
      offset >= VIRTIO_PCI_DEVICE_OFFSET &&
      offset < VIRTIO_PCI_DEVICE_OFFSET + this.spec.configSize
    ) {
      // Read-only, but for a selector that picks what the rest shows (virtio-input).
      const sel = this.spec.configSelect;
      if (sel) applyConfigSelect(sel, this.#config, offset - VIRTIO_PCI_DEVICE_OFFSET, data);
    } else {
      this.msix.write(offset, data);
    }
  }

  #selectedQueue(): number {
    const q = this.#regs[S.W_QSELECT];
    return q < this.spec.numQueues ? S.W_QUEUES + S.Q_STRIDE * q : -1;
  }

  #commonRead(offset: number, len: number): number {
    const r = this.#regs;
    const qb = this.#selectedQueue();
    switch (offset) {
      case VIRTIO_PCI_COMMON_DFSELECT:
        return r[S.W_DFSELECT] >>> 0;
      case VIRTIO_PCI_COMMON_DF: {
        const sel = r[S.W_DFSELECT] >>> 0;
        if (sel > 1) return 0;
        return Number((this.offeredFeatures >> BigInt(32 * sel)) & 0xffff_ffffn);
      }
      case VIRTIO_PCI_COMMON_GFSELECT:
        return r[S.W_GFSELECT] >>> 0;
      case VIRTIO_PCI_COMMON_GF: {
        const sel = r[S.W_GFSELECT];
        return sel === 0 ? r[S.W_GF_LO] >>> 0 : sel === 1 ? r[S.W_GF_HI] >>> 0 : 0;
      }
      case VIRTIO_PCI_COMMON_MSIX:
        return r[S.W_MSIX_CONFIG];
      case VIRTIO_PCI_COMMON_NUMQ:
        return this.spec.numQueues;
      case VIRTIO_PCI_COMMON_STATUS:
        return len === 1 ? Atomics.load(r, S.W_STATUS) & 0xff : 0;
      case VIRTIO_PCI_COMMON_CFGGENERATION:
        return Atomics.load(r, S.W_CONFIG_GEN) & 0xff;
      case VIRTIO_PCI_COMMON_Q_SELECT:
        return r[S.W_QSELECT];
      case VIRTIO_PCI_COMMON_Q_SIZE:
        return qb < 0 ? 0 : r[qb + S.Q_SIZE];
      case VIRTIO_PCI_COMMON_Q_MSIX:
        return qb < 0 ? VIRTIO_MSI_NO_VECTOR : r[qb + S.Q_MSIX];
      case VIRTIO_PCI_COMMON_Q_ENABLE:
        return qb < 0 ? 0 : Atomics.load(r, qb + S.Q_ENABLE);
      case VIRTIO_PCI_COMMON_Q_NOFF:
        return qb < 0 ? 0 : r[S.W_QSELECT];
    }
    if (qb >= 0 && offset >= VIRTIO_PCI_COMMON_Q_DESCLO && offset < VIRTIO_PCI_COMMON_CFG_SIZE) {
      const rel = offset - VIRTIO_PCI_COMMON_Q_DESCLO;
      if (rel % 4 !== 0) return 0;
      const w = qb + S.Q_DESC + rel / 4;
      if (len === 8) return (r[w + 1] >>> 0) * 0x1_0000_0000 + (r[w] >>> 0);
      return r[w] >>> 0;
    }
    return 0;
  }

  #commonWrite(offset: number, len: number, value: number): void {
    const r = this.#regs;
    const qb = this.#selectedQueue();
    const status = Atomics.load(r, S.W_STATUS);
    switch (offset) {
      case VIRTIO_PCI_COMMON_DFSELECT:
        r[S.W_DFSELECT] = value | 0;
        return;
      case VIRTIO_PCI_COMMON_GFSELECT:
        r[S.W_GFSELECT] = value | 0;
        return;
      case VIRTIO_PCI_COMMON_GF: {
        if (status & VIRTIO_CONFIG_S_FEATURES_OK) return;
        const sel = r[S.W_GFSELECT];
        if (sel === 0) r[S.W_GF_LO] = value | 0;
        else if (sel === 1) r[S.W_GF_HI] = value | 0;
        return;
      }
      case VIRTIO_PCI_COMMON_MSIX:
        r[S.W_MSIX_CONFIG] = this.#checkVector(value);
        return;
      case VIRTIO_PCI_COMMON_STATUS:
        if (len === 1) this.#writeStatus(value & 0xff);
        return;
      case VIRTIO_PCI_COMMON_Q_SELECT:
        r[S.W_QSELECT] = value & 0xffff;
        return;
    }
    if (qb < 0 || Atomics.load(r, qb + S.Q_ENABLE) === 1) {
      // Queue registers are frozen once enabled (spec 4.1.4.3.2), except the vector.
      if (qb >= 0 && offset === VIRTIO_PCI_COMMON_Q_MSIX) {
        r[qb + S.Q_MSIX] = this.#checkVector(value);
      }
      return;
    }
    switch (offset) {
      case VIRTIO_PCI_COMMON_Q_SIZE:
        r[qb + S.Q_SIZE] = value & 0xffff;
        return;
      case VIRTIO_PCI_COMMON_Q_MSIX:
        r[qb + S.Q_MSIX] = this.#checkVector(value);
        return;
      case VIRTIO_PCI_COMMON_Q_ENABLE:
        if (value === 1) Atomics.store(r, qb + S.Q_ENABLE, 1);
        return;
    }
    if (offset >= VIRTIO_PCI_COMMON_Q_DESCLO && offset < VIRTIO_PCI_COMMON_CFG_SIZE) {
      const rel = offset - VIRTIO_PCI_COMMON_Q_DESCLO;
      if (rel % 4 !== 0) return;
      const w = qb + S.Q_DESC + rel / 4;
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
      if (Atomics.load(r, S.W_STATUS) === 0 && !this.resetPending) {
        // Already in reset: nothing for the device side to do, and nothing to wait for.
        this.#resetRegisters();
        return;
      }
      this.#resetRegisters();
      if (this.link) {
        Atomics.store(r, S.W_RESET_PENDING, 1);
        this.link.statusChanged();
      } else this.ackReset();
      return;
    }
    // The driver must wait for a reset to complete (status reads 0) first.
    if (this.resetPending) return;
    const old = Atomics.load(r, S.W_STATUS);
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
    Atomics.store(r, S.W_STATUS, v);
    const changed = v ^ old;
    if (changed & (VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_FAILED)) this.link?.statusChanged();
  }
}
