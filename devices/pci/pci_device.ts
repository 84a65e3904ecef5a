/**
 * A PCI function's 256-byte configuration space with write masks, BARs and a
 * capability list, kept in a SharedArrayBuffer so every vCPU Worker that
 * takes a config or BAR access sees the same registers (callers hold the
 * VM's big lock).
 *
 * @module
 */
import type { BusDevice } from "../bus.ts";
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CACHE_LINE_SIZE,
  PCI_CAPABILITY_LIST,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_PARITY,
  PCI_COMMAND_SERR,
  PCI_DEVICE_ID,
  PCI_HEADER_TYPE,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_REVISION_ID,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from "./constants.ts";

/** Size of a conventional PCI configuration space. */
export const PCI_CONFIG_SPACE_SIZE = 256;
/** Number of BARs in a type-0 header. */
export const PCI_NUM_BARS = 6;

/** What a BAR decodes. */
export type PciBarKind = "io" | "mem32" | "mem64";

/** A BAR the device implements. */
export interface PciBarSpec {
  /** Size in bytes: a power of two, at least 16 for memory (4 for I/O). */
  size: number;
  /** I/O, 32-bit memory or 64-bit memory (uses this BAR and the next). */
  kind: PciBarKind;
  /** Memory BAR may be prefetched. */
  prefetchable?: boolean;
}

/** The identity a function shows in its header. */
export interface PciIds {
  /** Vendor id. */
  vendorId: number;
  /** Device id. */
  deviceId: number;
  /** 24-bit class code (class << 16 | subclass << 8 | prog-if). */
  classCode: number;
  /** Revision id. */
  revision?: number;
  /** Subsystem vendor id. */
  subsystemVendorId?: number;
  /** Subsystem id. */
  subsystemId?: number;
  /** Interrupt pin: 0 none, 1..4 = INTA..INTD. */
  interruptPin?: number;
}

/** Options for {@link PciDevice}. */
export interface PciDeviceOptions {
  /**
   * Existing register state from {@link PciDevice.state} (another Worker's
   * instance); when absent the registers start at their reset values.
   */
  state?: SharedArrayBuffer;
  /** Told when the guest moves a BAR (this thread's instance). */
  onBarRemap?: PciBarRemapHook;
}

/**
 * Called after a BAR's decoded address changes (guest reprogrammed it, or
 * toggled I/O / memory decode). -1 means "not decoded". The VMM moves the
 * BAR's {@link PciDevice.barDevice} on its PIO or MMIO bus (and any
 * ioeventfds) accordingly.
 */
export type PciBarRemapHook = (bar: number, oldAddr: number, newAddr: number) => void;

const WRITABLE_COMMAND = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
  PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;
/** Status error bits the guest clears by writing 1. */
const STATUS_W1C = 0xf900;
const FIRST_CAP = 0x40;

/**
 * A PCI function (header type 0). Subclasses implement BAR accesses by
 * overriding {@link PciDevice.barRead} / {@link PciDevice.barWrite}, and
 * capabilities by {@link PciDevice.configWritten}.
 *
 * @example
 * ```ts
 * import { PciDevice } from "./pci_device.ts";
 * const dev = new PciDevice({ vendorId: 0x1234, deviceId: 0x11, classCode: 0xff0000 });
 * dev.addBar(0, { size: 0x1000, kind: "mem32" });
 * const d = new Uint8Array(4);
 * dev.configWrite(0x10, new Uint8Array([0xff, 0xff, 0xff, 0xff]));
 * dev.configRead(0x10, d);
 * console.log(new DataView(d.buffer).getUint32(0, true).toString(16)); // fffff000
 * ```
 */
export class PciDevice {
  readonly #state: SharedArrayBuffer;
  readonly #fresh: boolean;
  /** The live configuration bytes (shared between Workers). */
  protected readonly config: Uint8Array;
  readonly #view: DataView;
  readonly #wmask = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  readonly #w1cmask = new Uint8Array(PCI_CONFIG_SPACE_SIZE);
  readonly #bars: (PciBarSpec | null)[] = new Array(PCI_NUM_BARS).fill(null);
  readonly #upper: boolean[] = new Array(PCI_NUM_BARS).fill(false);
  readonly #barDevices: (BusDevice | null)[] = new Array(PCI_NUM_BARS).fill(null);
  #capEnd = FIRST_CAP;
  #lastCap = 0;
  readonly #onBarRemap: PciBarRemapHook | null;

  /**
   * @param ids the function's identity
   * @param options shared state to attach to
   */
  constructor(ids: PciIds, options: PciDeviceOptions = {}) {
    this.#fresh = options.state === undefined;
    this.#state = options.state ?? new SharedArrayBuffer(PCI_CONFIG_SPACE_SIZE);
    this.#onBarRemap = options.onBarRemap ?? null;
    if (this.#state.byteLength !== PCI_CONFIG_SPACE_SIZE) {
      throw new RangeError("PCI state buffer has the wrong size");
    }
    this.config = new Uint8Array(this.#state);
    this.#view = new DataView(this.#state);
    this.initU16(PCI_VENDOR_ID, ids.vendorId);
    this.initU16(PCI_DEVICE_ID, ids.deviceId);
    this.initU8(PCI_REVISION_ID, ids.revision ?? 0);
    this.initU8(PCI_CLASS_PROG, ids.classCode & 0xff);
    this.initU16(PCI_CLASS_PROG + 1, (ids.classCode >> 8) & 0xffff);
    this.initU8(PCI_HEADER_TYPE, 0);
    this.initU16(PCI_SUBSYSTEM_VENDOR_ID, ids.subsystemVendorId ?? 0);
    this.initU16(PCI_SUBSYSTEM_ID, ids.subsystemId ?? 0);
    this.initU8(PCI_INTERRUPT_PIN, ids.interruptPin ?? 0);
    this.setMask(PCI_COMMAND, 2, WRITABLE_COMMAND);
    this.#w1cmask[PCI_STATUS] = STATUS_W1C & 0xff;
    this.#w1cmask[PCI_STATUS + 1] = STATUS_W1C >> 8;
    this.#wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    this.#wmask[PCI_LATENCY_TIMER] = 0xff;
    this.#wmask[PCI_INTERRUPT_LINE] = 0xff;
  }

  /**
   * The shared register state, to rebuild this function in another Worker
   * (`new Subclass(..., { state })`).
   *
   * @returns the SharedArrayBuffer holding the configuration space
   */
  state(): SharedArrayBuffer {
    return this.#state;
  }

  /** Sets a read-only field at construction (only when the state is new). */
  protected initU8(offset: number, v: number): void {
    if (this.#fresh) this.config[offset] = v;
  }
  /** Sets a read-only u16 at construction (only when the state is new). */
  protected initU16(offset: number, v: number): void {
    if (this.#fresh) this.#view.setUint16(offset, v, true);
  }
  /** Sets a read-only u32 at construction (only when the state is new). */
  protected initU32(offset: number, v: number): void {
    if (this.#fresh) this.#view.setUint32(offset, v >>> 0, true);
  }

  /** Marks `len` bytes at `offset` guest-writable under the bit mask `mask`. */
  protected setMask(offset: number, len: number, mask: number): void {
    const m = mask >>> 0;
    for (let i = 0; i < len; i++) this.#wmask[offset + i] = (m >>> (8 * i)) & 0xff;
  }

  /**
   * Reads a u16 of config space. @param offset byte offset @returns value
   */
  configU16(offset: number): number {
    return this.#view.getUint16(offset, true);
  }
  /**
   * Reads a u32 of config space. @param offset byte offset @returns value
   */
  configU32(offset: number): number {
    return this.#view.getUint32(offset, true);
  }

  /**
   * Declares a BAR. Call from the constructor, before the guest runs.
   *
   * @param index BAR number (0..5; a 64-bit BAR also takes index+1)
   * @param spec size and kind
   */
  addBar(index: number, spec: PciBarSpec): void {
    const min = spec.kind === "io" ? 4 : 16;
    if (spec.size < min || (spec.size & (spec.size - 1)) !== 0 || spec.size > 2 ** 31) {
      throw new RangeError(`Invalid BAR size ${spec.size}`);
    }
    const last = spec.kind === "mem64" ? index + 1 : index;
    if (index < 0 || last >= PCI_NUM_BARS || this.#bars[index] || this.#bars[last]) {
      throw new RangeError(`BAR ${index} is not free`);
    }
    this.#bars[index] = spec;
    const off = PCI_BASE_ADDRESS_0 + 4 * index;
    let low = 0;
    if (spec.kind === "io") low = PCI_BASE_ADDRESS_SPACE_IO;
    else {
      if (spec.kind === "mem64") low |= PCI_BASE_ADDRESS_MEM_TYPE_64;
      if (spec.prefetchable) low |= PCI_BASE_ADDRESS_MEM_PREFETCH;
    }
    this.initU32(off, low);
    this.setMask(
      off,
      4,
      // Address bits at and above the size: writing all-ones reads back the size mask.
      ~(spec.size - 1) & (spec.kind === "io" ? 0xffff_fffc : 0xffff_fff0),
    );
    if (spec.kind === "mem64") {
      this.#bars[index + 1] = spec;
      this.#upper[index + 1] = true;
      this.initU32(off + 4, 0);
      this.setMask(off + 4, 4, 0xffff_ffff);
    }
  }

  /**
   * A BAR's spec, or null.
   *
   * @param index BAR number
   * @returns its spec
   */
  barSpec(index: number): PciBarSpec | null {
    if (index < 0 || index >= PCI_NUM_BARS || this.#upper[index]) return null;
    return this.#bars[index];
  }

  /**
   * The address programmed in a BAR, whether or not decode is enabled.
   *
   * @param index BAR number
   * @returns the guest address (-1 when beyond 2^53)
   */
  barProgrammed(index: number): number {
    const spec = this.barSpec(index);
    if (!spec) return -1;
    const off = PCI_BASE_ADDRESS_0 + 4 * index;
    const lo = this.configU32(off);
    if (spec.kind === "io") return lo & 0xffff_fffc;
    const low = (lo & 0xffff_fff0) >>> 0;
    if (spec.kind === "mem32") return low;
    const hi = this.configU32(off + 4);
    return hi >= 0x20_0000 ? -1 : hi * 0x1_0000_0000 + low;
  }

  /**
   * Where a BAR currently decodes: its address if the matching command
   * decode bit is on and the address is usable, else -1.
   *
   * @param index BAR number
   * @returns guest address, or -1
   */
  barAddress(index: number): number {
    const spec = this.barSpec(index);
    if (!spec) return -1;
    const cmd = this.configU16(PCI_COMMAND);
    const bit = spec.kind === "io" ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
    if (!(cmd & bit)) return -1;
    const addr = this.barProgrammed(index);
    if (addr <= 0) return -1;
    const limit = spec.kind === "io" ? 0x1_0000 : spec.kind === "mem32" ? 0x1_0000_0000 : 2 ** 53;
    return addr + spec.size <= limit ? addr : -1;
  }

  /**
   * Programs a BAR's address (the VMM's allocator does this before boot, as
   * firmware would).
   *
   * @param index BAR number
   * @param addr guest address, aligned to the BAR size
   */
  setBarAddress(index: number, addr: number): void {
    const spec = this.barSpec(index);
    if (!spec) throw new RangeError(`BAR ${index} is not implemented`);
    if (addr % spec.size !== 0) {
      throw new RangeError(`BAR address 0x${addr.toString(16)} misaligned`);
    }
    const before = this.#decoded();
    const off = PCI_BASE_ADDRESS_0 + 4 * index;
    const low = this.configU32(off) & (spec.kind === "io" ? 3 : 0xf);
    this.#view.setUint32(off, ((addr % 0x1_0000_0000) | low) >>> 0, true);
    if (spec.kind === "mem64") {
      this.#view.setUint32(off + 4, Math.floor(addr / 0x1_0000_0000), true);
    }
    this.#notifyRemaps(before);
  }

  /**
   * Appends a capability to the list.
   *
   * @param id capability id (PCI_CAP_ID_*)
   * @param body bytes after the id/next pair
   * @param writeMask optional guest-writable bit mask over body
   * @returns the capability's offset in config space
   */
  addCapability(id: number, body: Uint8Array, writeMask?: Uint8Array): number {
    const off = this.#capEnd;
    const len = (2 + body.length + 3) & ~3;
    if (off + len > PCI_CONFIG_SPACE_SIZE) throw new RangeError("Capability list is full");
    this.initU8(off, id);
    this.initU8(off + 1, 0);
    for (let i = 0; i < body.length; i++) {
      this.initU8(off + 2 + i, body[i]);
      if (writeMask) this.#wmask[off + 2 + i] = writeMask[i];
    }
    if (this.#lastCap === 0) {
      this.initU8(PCI_CAPABILITY_LIST, off);
      this.initU16(PCI_STATUS, this.configU16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
    } else this.initU8(this.#lastCap + 1, off);
    this.#lastCap = off;
    this.#capEnd = off + len;
    return off;
  }

  /**
   * A guest read of config space (`data.length` bytes at `offset`).
   *
   * @param offset byte offset (0..255)
   * @param data buffer to fill
   */
  configRead(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const o = offset + i;
      data[i] = o < PCI_CONFIG_SPACE_SIZE ? this.config[o] : 0xff;
    }
  }

  /**
   * A guest write of config space, honouring read-only and write-1-to-clear
   * bits, and reporting BAR moves through the `onBarRemap` option.
   *
   * @param offset byte offset (0..255)
   * @param data bytes written
   */
  configWrite(offset: number, data: Uint8Array): void {
    if (offset < 0 || offset + data.length > PCI_CONFIG_SPACE_SIZE) return;
    const touchesBars = offset < PCI_BASE_ADDRESS_0 + 24 && offset + data.length > PCI_COMMAND;
    const before = touchesBars ? this.#decoded() : null;
    const cfg = this.config;
    for (let i = 0; i < data.length; i++) {
      const o = offset + i;
      const m = this.#wmask[o];
      let v = (cfg[o] & ~m) | (data[i] & m);
      v &= ~(data[i] & this.#w1cmask[o]);
      cfg[o] = v;
    }
    if (before) this.#notifyRemaps(before);
    this.configWritten(offset, data.length);
  }

  /**
   * Hook for subclasses: called after a guest config write was applied.
   *
   * @param _offset first byte written
   * @param _len bytes written
   */
  protected configWritten(_offset: number, _len: number): void {}

  #decoded(): number[] {
    const out: number[] = [];
    for (let i = 0; i < PCI_NUM_BARS; i++) out.push(this.barAddress(i));
    return out;
  }

  #notifyRemaps(before: number[]): void {
    for (let i = 0; i < PCI_NUM_BARS; i++) {
      const now = this.barAddress(i);
      if (now !== before[i] && this.#onBarRemap) this.#onBarRemap(i, before[i], now);
    }
  }

  /**
   * The BusDevice for a BAR: offsets are relative to the BAR's start, so it
   * stays valid wherever the guest moves the BAR.
   *
   * @param index BAR number
   * @returns a device for the PIO or MMIO bus
   */
  barDevice(index: number): BusDevice {
    if (!this.barSpec(index)) throw new RangeError(`BAR ${index} is not implemented`);
    let d = this.#barDevices[index];
    if (!d) {
      d = {
        read: (offset: number, data: Uint8Array) => this.barRead(index, offset, data),
        write: (offset: number, data: Uint8Array) => this.barWrite(index, offset, data),
      };
      this.#barDevices[index] = d;
    }
    return d;
  }

  /**
   * A guest read inside a BAR; the default reads as zeros.
   *
   * @param _bar BAR number
   * @param _offset offset in the BAR
   * @param data buffer to fill
   */
  barRead(_bar: number, _offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  /**
   * A guest write inside a BAR; the default ignores it.
   *
   * @param _bar BAR number
   * @param _offset offset in the BAR
   * @param _data bytes written
   */
  barWrite(_bar: number, _offset: number, _data: Uint8Array): void {}
}
