/**
 * MSI-X: the capability in config space, the vector table and the pending
 * bit array in a BAR, all in shared memory so that the device's loop thread
 * can signal a vector while vCPU threads program the table.
 *
 * Masking is kept in two places. Interrupts raised through
 * {@link MsixState.signal} check the mask bits and park in the PBA. Those a
 * kernel data path (vhost) sends straight to a vector's irqfd cannot be
 * checked here, so the hooks also see each vector's *gate*: open while MSI-X
 * is enabled and the vector unmasked, closed otherwise. The VMM disarms the
 * irqfd when the gate closes, so what is signalled there waits in the
 * eventfd; the guest sees it as a pending bit when it reads the PBA, and it
 * is delivered once when the gate opens (QEMU's vector mask/unmask/poll
 * notifiers, virtio_pci_vq_vector_mask, with the irqfd as the masked
 * notifier).
 *
 * @module
 */
import {
  PCI_CAP_ID_MSIX,
  PCI_MSIX_ENTRY_CTRL_MASKBIT,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
} from "./constants.ts";
import type { PciDevice } from "./pci_device.ts";

/** A vector's message as the guest programmed it. */
export interface MsixMessage {
  /** Message address, low 32 bits. */
  addressLo: number;
  /** Message address, high 32 bits. */
  addressHi: number;
  /** Message data. */
  data: number;
  /** Whether the vector is masked (per-vector or function mask). */
  masked: boolean;
}

/**
 * Hooks the VMM uses to route vectors to KVM (GSI routing + irqfd), given
 * once when the function is built.
 */
export interface MsixHooks {
  /**
   * A vector's address/data or mask changed, or MSI-X was enabled/disabled
   * (`enabled` false means: drop the route). Runs on the vCPU thread that
   * made the change, once per vector touched.
   */
  vectorChanged?(vector: number, message: MsixMessage, enabled: boolean): void;
  /**
   * One guest update of the table or of the enable/mask bits is complete:
   * re-route now (one KVM_SET_GSI_ROUTING), before any pending vector the
   * update unmasked is delivered. Runs on the vCPU thread that made it.
   */
  routesChanged?(): void;
  /** Delivers an unmasked vector (irqfd write); callable from any thread. */
  deliver(vector: number): void;
  /**
   * A vector's gate opened (MSI-X enabled and the vector unmasked) or
   * closed. Called once per transition, on the vCPU thread that made it:
   * a close before {@link MsixHooks.routesChanged}, an open after it and
   * before a pending vector is delivered. Every gate starts open (the VMM
   * arms each vector's irqfd when it builds the machine), so the guest's
   * first update closes those it has not unmasked.
   */
  vectorGate?(vector: number, open: boolean): void;
  /**
   * Takes what was signalled on a closed vector outside
   * {@link MsixState.signal} (a kernel data path writing its irqfd); true
   * when anything was, and the vector is then pending. Called when the
   * gate opens (before {@link MsixHooks.vectorGate}) and when the guest
   * reads the PBA.
   */
  collectMasked?(vector: number): boolean;
}

/**
 * The MSI-X state of one function.
 *
 * @example
 * ```ts
 * import { PciDevice } from "./pci_device.ts";
 * import { MsixState } from "./msix.ts";
 * const dev = new PciDevice({ vendorId: 0x1af4, deviceId: 0x1042, classCode: 0x018000 });
 * dev.addBar(0, { size: 0x4000, kind: "mem32" });
 * const msix = new MsixState(dev, { vectors: 2, bar: 0, tableOffset: 0x2000, pbaOffset: 0x3000 });
 * console.log(msix.enabled); // false
 * ```
 */
export class MsixState {
  readonly #dev: PciDevice;
  readonly #cap: number;
  readonly #table: Uint32Array;
  readonly #pba: Int32Array;
  readonly #closed: Int32Array;
  readonly #sab: SharedArrayBuffer;
  /** Number of vectors. */
  readonly vectors: number;
  /** BAR holding the table and PBA. */
  readonly bar: number;
  /** Table offset in the BAR. */
  readonly tableOffset: number;
  /** PBA offset in the BAR. */
  readonly pbaOffset: number;
  /** Routing and delivery hooks (from the constructor). */
  readonly hooks: MsixHooks;

  /**
   * Adds the capability to `dev` (call in its constructor).
   *
   * @param dev the function
   * @param options vector count, BAR and offsets; `state` from another Worker's
   *   {@link MsixState.state}; `hooks` for routing and delivery (default: none)
   */
  constructor(
    dev: PciDevice,
    options: {
      vectors: number;
      bar: number;
      tableOffset: number;
      pbaOffset: number;
      state?: SharedArrayBuffer;
      hooks?: MsixHooks;
    },
  ) {
    const { vectors, bar, tableOffset, pbaOffset } = options;
    if (vectors < 1 || vectors > 2048) {
      throw new RangeError(`Invalid MSI-X vector count ${vectors}`);
    }
    if (tableOffset % 8 !== 0 || pbaOffset % 8 !== 0) {
      throw new RangeError("MSI-X offsets misaligned");
    }
    this.#dev = dev;
    this.hooks = options.hooks ?? { deliver() {} };
    this.vectors = vectors;
    this.bar = bar;
    this.tableOffset = tableOffset;
    this.pbaOffset = pbaOffset;
    const pbaWords = Math.ceil(vectors / 32) + (Math.ceil(vectors / 32) & 1);
    const gateWords = Math.ceil(vectors / 32);
    const bytes = vectors * PCI_MSIX_ENTRY_SIZE + (pbaWords + gateWords) * 4;
    const fresh = options.state === undefined;
    this.#sab = options.state ?? new SharedArrayBuffer(bytes);
    if (this.#sab.byteLength !== bytes) {
      throw new RangeError("MSI-X state buffer has the wrong size");
    }
    this.#table = new Uint32Array(this.#sab, 0, vectors * 4);
    this.#pba = new Int32Array(this.#sab, vectors * PCI_MSIX_ENTRY_SIZE, pbaWords);
    // One bit per vector, set while its gate is closed (zero: all open).
    this.#closed = new Int32Array(
      this.#sab,
      vectors * PCI_MSIX_ENTRY_SIZE + pbaWords * 4,
      gateWords,
    );
    if (fresh) {
      for (let v = 0; v < vectors; v++) this.#table[4 * v + 3] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
    }
    const body = new Uint8Array(10);
    const bv = new DataView(body.buffer);
    bv.setUint16(0, vectors - 1, true);
    bv.setUint32(2, (tableOffset | bar) >>> 0, true);
    bv.setUint32(6, (pbaOffset | bar) >>> 0, true);
    const mask = new Uint8Array(10);
    mask[1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
    this.#cap = dev.addCapability(PCI_CAP_ID_MSIX, body, mask);
  }

  /** The shared table/PBA state, for another Worker's instance. */
  state(): SharedArrayBuffer {
    return this.#sab;
  }

  /** Config-space offset of the capability. */
  get capOffset(): number {
    return this.#cap;
  }

  /** MSI-X enable bit. */
  get enabled(): boolean {
    return (this.#dev.configU16(this.#cap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_ENABLE) !== 0;
  }

  /** Function mask bit. */
  get functionMasked(): boolean {
    return (this.#dev.configU16(this.#cap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_MASKALL) !== 0;
  }

  /**
   * The message programmed for a vector.
   *
   * @param vector vector number
   * @returns address, data, mask
   */
  message(vector: number): MsixMessage {
    const t = this.#table;
    return {
      addressLo: t[4 * vector],
      addressHi: t[4 * vector + 1],
      data: t[4 * vector + 2],
      masked: this.#masked(vector),
    };
  }

  #masked(vector: number): boolean {
    return this.functionMasked ||
      (Atomics.load(this.#table, 4 * vector + 3) & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0;
  }

  /**
   * Whether a vector's pending bit is set.
   *
   * @param vector vector number
   * @returns the PBA bit
   */
  pending(vector: number): boolean {
    return (Atomics.load(this.#pba, vector >> 5) & (1 << (vector & 31))) !== 0;
  }

  /**
   * Whether a vector's gate is open, as the hooks were last told.
   *
   * @param vector vector number
   * @returns true while the hooks treat it as enabled and unmasked
   */
  gateOpen(vector: number): boolean {
    return (Atomics.load(this.#closed, vector >> 5) & (1 << (vector & 31))) === 0;
  }

  /**
   * Raises a vector: delivered now if unmasked, else recorded in the PBA
   * and delivered when unmasked. Callable from any thread.
   *
   * @param vector vector number
   * @returns false when MSI-X is disabled or the vector is out of range
   */
  signal(vector: number): boolean {
    if (vector < 0 || vector >= this.vectors || !this.enabled) return false;
    if (this.#masked(vector)) {
      Atomics.or(this.#pba, vector >> 5, 1 << (vector & 31));
      // The vCPU may have unmasked between the check and the PBA update.
      if (!this.#masked(vector)) this.#flush(vector);
      return true;
    }
    this.hooks.deliver(vector);
    return true;
  }

  #flush(vector: number): void {
    const bit = 1 << (vector & 31);
    const old = Atomics.and(this.#pba, vector >> 5, ~bit);
    if (old & bit) this.hooks.deliver(vector);
  }

  /**
   * Call after a config write touching the capability (enable or function
   * mask changes): re-routes vectors and delivers pending ones now unmasked.
   *
   * @param offset first byte written
   * @param len bytes written
   */
  configWritten(offset: number, len: number): void {
    const ctl = this.#cap + PCI_MSIX_FLAGS;
    if (offset + len <= ctl || offset >= ctl + 2) return;
    const enabled = this.enabled;
    this.#closeGates(0, this.vectors);
    for (let v = 0; v < this.vectors; v++) this.hooks.vectorChanged?.(v, this.message(v), enabled);
    this.hooks.routesChanged?.();
    this.#openGates(0, this.vectors);
    if (!enabled) return;
    for (let v = 0; v < this.vectors; v++) if (!this.#masked(v)) this.#flush(v);
  }

  #closeGates(first: number, end: number): void {
    const enabled = this.enabled;
    for (let v = first; v < end; v++) {
      if (!this.gateOpen(v) || (enabled && !this.#masked(v))) continue;
      Atomics.or(this.#closed, v >> 5, 1 << (v & 31));
      this.hooks.vectorGate?.(v, false);
    }
  }

  #openGates(first: number, end: number): void {
    if (!this.enabled) return;
    for (let v = first; v < end; v++) {
      if (this.gateOpen(v) || this.#masked(v)) continue;
      // Collected before the gate opens: after, the irqfd would deliver it too.
      if (this.hooks.collectMasked?.(v)) Atomics.or(this.#pba, v >> 5, 1 << (v & 31));
      Atomics.and(this.#closed, v >> 5, ~(1 << (v & 31)));
      this.hooks.vectorGate?.(v, true);
    }
  }

  /** Turns what closed vectors collected outside signal() into PBA bits. */
  #collectClosed(firstWord: number, endWord: number): void {
    const collect = this.hooks.collectMasked;
    if (!collect) return;
    const end = Math.min(this.vectors, endWord * 32);
    for (let v = firstWord * 32; v < end; v++) {
      if (!this.gateOpen(v) && collect(v)) Atomics.or(this.#pba, v >> 5, 1 << (v & 31));
    }
  }

  /**
   * A guest read of the table or PBA (offset relative to the BAR).
   *
   * @param offset BAR offset
   * @param data buffer to fill
   * @returns false when the offset is not in the table or PBA
   */
  read(offset: number, data: Uint8Array): boolean {
    const len = data.length;
    let words: Uint32Array | Int32Array, rel: number;
    if (offset >= this.tableOffset && offset + len <= this.tableOffset + this.vectors * 16) {
      words = this.#table;
      rel = offset - this.tableOffset;
    } else if (offset >= this.pbaOffset && offset + len <= this.pbaOffset + this.#pba.length * 4) {
      words = this.#pba;
      rel = offset - this.pbaOffset;
      this.#collectClosed(rel >> 2, (rel + len + 3) >> 2);
    } else return false;
    if ((len !== 4 && len !== 8) || rel % len !== 0) {
      data.fill(0);
      return true;
    }
    for (let i = 0; i < len; i += 4) {
      const w = words[(rel + i) >> 2] >>> 0;
      data[i] = w & 0xff;
      data[i + 1] = (w >>> 8) & 0xff;
      data[i + 2] = (w >>> 16) & 0xff;
      data[i + 3] = w >>> 24;
    }
    return true;
  }

  /**
   * A guest write of the table (the PBA is read-only). Offset relative to
   * the BAR.
   *
   * @param offset BAR offset
   * @param data bytes written
   * @returns false when the offset is not in the table or PBA
   */
  write(offset: number, data: Uint8Array): boolean {
    const len = data.length;
    if (offset >= this.pbaOffset && offset + len <= this.pbaOffset + this.#pba.length * 4) {
      return true;
    }
    if (offset < this.tableOffset || offset + len > this.tableOffset + this.vectors * 16) {
      return false;
    }
    const rel = offset - this.tableOffset;
    if ((len !== 4 && len !== 8) || rel % len !== 0) return true;
    const vector = rel >> 4;
    const wasMasked = this.#masked(vector);
    for (let i = 0; i < len; i += 4) {
      const w = (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) >>> 0;
      const idx = (rel + i) >> 2;
      if ((idx & 3) === 3) Atomics.store(this.#table, idx, w & PCI_MSIX_ENTRY_CTRL_MASKBIT);
      else this.#table[idx] = w;
    }
    const enabled = this.enabled;
    this.#closeGates(vector, vector + 1);
    this.hooks.vectorChanged?.(vector, this.message(vector), enabled);
    this.hooks.routesChanged?.();
    this.#openGates(vector, vector + 1);
    if (wasMasked && !this.#masked(vector) && enabled) this.#flush(vector);
    return true;
  }
}
