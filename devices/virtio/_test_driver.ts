/**
 * A guest virtio driver written in TypeScript, for tests and benchmarks: it
 * programs a {@link VirtioPciDevice} through its BAR like Linux's
 * virtio_pci_modern does, and drives its split queues in guest RAM: one
 * (virtio-blk, virtio-rng) or several (virtio-net, virtio-console,
 * multiqueue virtio-blk).
 *
 * @module
 */
import type { GuestMemory } from "../../memory/guest_memory.ts";
import {
  featureBit,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_VERSION_1,
  VIRTIO_PCI_COMMON_DF,
  VIRTIO_PCI_COMMON_DFSELECT,
  VIRTIO_PCI_COMMON_GF,
  VIRTIO_PCI_COMMON_GFSELECT,
  VIRTIO_PCI_COMMON_Q_AVAILLO,
  VIRTIO_PCI_COMMON_Q_DESCLO,
  VIRTIO_PCI_COMMON_Q_ENABLE,
  VIRTIO_PCI_COMMON_Q_MSIX,
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_Q_USEDLO,
  VIRTIO_PCI_COMMON_STATUS,
  VIRTIO_RING_F_EVENT_IDX,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
} from "./constants.ts";
import {
  VIRTIO_PCI_BAR,
  VIRTIO_PCI_DEVICE_OFFSET,
  VIRTIO_PCI_NOTIFY_MULTIPLIER,
  VIRTIO_PCI_NOTIFY_OFFSET,
  VirtioPciDevice,
  type VirtioPciSpec,
  virtioPciSpecOf,
  type VirtioTransportLink,
} from "./pci.ts";
import { VirtioPciBackend } from "./pci_backend.ts";
import type { InterruptSink, VirtioDevice } from "./device.ts";

/**
 * A transport link for a register side and device side in one thread: it
 * forwards to whatever `target()` returns when an event happens (the
 * backend built after the transport, or a test's own recorder).
 *
 * @param target the current receiver (null drops the event)
 * @returns the link to build the transport with
 * @example
 * ```ts ignore
 * let backend: VirtioPciBackend | null = null;
 * const dev = new VirtioPciDevice(spec, { interrupt, link: forwardingLink(() => backend) });
 * backend = new VirtioPciBackend({ transport: dev, device, mem });
 * ```
 */
export function forwardingLink(target: () => VirtioTransportLink | null): VirtioTransportLink {
  return {
    notify: (q) => target()?.notify(q),
    statusChanged: () => target()?.statusChanged(),
  };
}

/**
 * A device model behind its virtio-pci transport and backend, in one thread,
 * wired as a loop thread wires them: the transport's kicks and status
 * changes reach the backend through a {@link forwardingLink}.
 *
 * @param device the device model
 * @param mem guest RAM
 * @param options `interrupt` (default a fresh {@link CountingSink}), `log`
 *   for broken-device messages (default console.error), `spec` in place of
 *   the device's own (one that went through postMessage, say)
 * @returns the transport and the backend
 * @example
 * ```ts ignore
 * const { dev } = wireDevice(new VirtioRng({ loop }), mem, { log: (m) => logs.push(m) });
 * const drv = new TestDriver(mem, dev, { size: 16 });
 * ```
 */
export function wireDevice(
  device: VirtioDevice,
  mem: GuestMemory,
  options: { interrupt?: InterruptSink; log?: (message: string) => void; spec?: VirtioPciSpec } =
    {},
): { dev: VirtioPciDevice; backend: VirtioPciBackend } {
  let backend: VirtioPciBackend | null = null;
  const dev = new VirtioPciDevice(options.spec ?? virtioPciSpecOf(device), {
    interrupt: options.interrupt ?? new CountingSink(),
    link: forwardingLink(() => backend),
  });
  backend = new VirtioPciBackend({ transport: dev, device, mem, log: options.log });
  return { dev, backend };
}

/** One buffer of a chain the driver offers. */
export interface Segment {
  /** Guest address. */
  addr: number;
  /** Length. */
  len: number;
  /** Device-writable. */
  write?: boolean;
}

/** A used-ring entry. */
export interface UsedElem {
  /** Head descriptor index. */
  id: number;
  /** Bytes written by the device. */
  len: number;
}

/** Where a {@link DriverQueue} puts its rings. */
export interface DriverQueueLayout {
  /** Used ring on its own page (as the multi-queue layouts do) instead of 4-byte aligned. */
  pageAlignedUsed?: boolean;
  /** Room after the rings for one 64-entry indirect table per head. */
  indirect?: boolean;
}

/** The driver side of one split ring in guest RAM. */
export class DriverQueue {
  readonly mem: GuestMemory;
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  /** Indirect tables (64 entries per head), or -1 without them. */
  readonly indirectArea: number;
  #free: number[] = [];
  #chainLen = new Map<number, number>();
  #availIdx = 0;
  #lastUsed = 0;

  /**
   * @param mem guest RAM
   * @param size ring size
   * @param base guest address of the descriptor table
   * @param layout alignment of the used ring, room for indirect tables
   */
  constructor(mem: GuestMemory, size: number, base: number, layout: DriverQueueLayout = {}) {
    this.mem = mem;
    this.size = size;
    this.desc = base;
    this.avail = base + 16 * size;
    const align = layout.pageAlignedUsed ? 0xfff : 3;
    this.used = (this.avail + 6 + 2 * size + align) & ~align;
    this.indirectArea = layout.indirect ? (this.used + 6 + 8 * size + 0xfff) & ~0xfff : -1;
  }

  /** Bytes this queue occupies from its base (indirect tables included). */
  get bytes(): number {
    const end = this.indirectArea >= 0 ? this.indirectArea + this.size * 16 * 64 : this.used + 6 +
      8 * this.size;
    return end - this.desc;
  }

  /** Zeroes the rings and frees every descriptor (after a device reset). */
  reset(): void {
    this.mem.fill(this.desc, this.used + 6 + 8 * this.size - this.desc, 0);
    this.#free = [];
    for (let i = this.size - 1; i >= 0; i--) this.#free.push(i);
    this.#chainLen.clear();
    this.#availIdx = 0;
    this.#lastUsed = 0;
  }

  /** Free descriptors left. */
  get freeCount(): number {
    return this.#free.length;
  }

  #writeDesc(table: number, i: number, s: Segment, flags: number, next: number): void {
    const d = table + 16 * i;
    this.mem.writeU64(d, BigInt(s.addr));
    this.mem.writeU32(d + 8, s.len);
    this.mem.writeU16(d + 12, flags | (s.write ? VRING_DESC_F_WRITE : 0));
    this.mem.writeU16(d + 14, next);
  }

  /**
   * Offers a chain; returns its head, or -1 when the ring lacks descriptors.
   *
   * @param segs buffers, readable first
   * @param options `indirect`: put them in an indirect table (one ring slot)
   */
  add(segs: Segment[], options: { indirect?: boolean } = {}): number {
    if (options.indirect) {
      if (this.indirectArea < 0) throw new Error("This queue has no room for indirect tables");
      if (this.#free.length < 1) return -1;
      // The head addIndirectAt takes next names this head's table.
      const next = this.#free[this.#free.length - 1];
      return this.addIndirectAt(this.indirectArea + next * 16 * 64, segs);
    }
    if (this.#free.length < segs.length) return -1;
    const ids = segs.map(() => this.#free.pop()!);
    segs.forEach((s, i) =>
      this.#writeDesc(
        this.desc,
        ids[i],
        s,
        i + 1 < segs.length ? VRING_DESC_F_NEXT : 0,
        i + 1 < segs.length ? ids[i + 1] : 0,
      )
    );
    this.#chainLen.set(ids[0], segs.length);
    this.#offer(ids[0]);
    return ids[0];
  }

  /**
   * Offers a chain as one indirect descriptor whose table the caller placed
   * at `table` (any length the device allows, where `add` holds 64).
   *
   * @param table guest address for the table (16 bytes per segment)
   * @param segs buffers, readable first
   * @returns the head, or -1 when the ring is full
   */
  addIndirectAt(table: number, segs: readonly Segment[]): number {
    if (this.#free.length < 1) return -1;
    const head = this.#free.pop()!;
    for (let i = 0; i < segs.length; i++) {
      this.#writeDesc(table, i, segs[i], i + 1 < segs.length ? VRING_DESC_F_NEXT : 0, i + 1);
    }
    this.#writeDesc(
      this.desc,
      head,
      { addr: table, len: 16 * segs.length },
      VRING_DESC_F_INDIRECT,
      0,
    );
    this.#chainLen.set(head, 1);
    this.#offer(head);
    return head;
  }

  /** Puts a chain's head in the avail ring and publishes it. */
  #offer(head: number): void {
    this.mem.writeU16(this.avail + 4 + 2 * (this.#availIdx % this.size), head);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    this.mem.writeU16(this.avail + 2, this.#availIdx);
  }

  /** Sets used_event (EVENT_IDX) so the device interrupts after entry `idx`. */
  setUsedEvent(idx: number): void {
    this.mem.writeU16(this.avail + 4 + 2 * this.size, idx);
  }

  /** Collects new used entries and frees their descriptors. */
  collect(): UsedElem[] {
    const out: UsedElem[] = [];
    const idx = this.mem.readU16(this.used + 2);
    while (this.#lastUsed !== idx) {
      const e = this.used + 4 + 8 * (this.#lastUsed % this.size);
      const id = this.mem.readU32(e);
      out.push({ id, len: this.mem.readU32(e + 4) });
      let n = this.#chainLen.get(id) ?? 0;
      this.#chainLen.delete(id);
      let i = id;
      while (n-- > 0) {
        this.#free.push(i);
        i = this.mem.readU16(this.desc + 16 * i + 14);
      }
      this.#lastUsed = (this.#lastUsed + 1) & 0xffff;
    }
    return out;
  }
}

/** Options for {@link TestDriver}. */
export interface TestDriverOptions {
  /** One queue of this size (default 64), 4-byte aligned used ring, indirect tables. */
  size?: number;
  /** Several queues of these sizes instead (used rings page-aligned, no indirect tables). */
  sizes?: number[];
  /** Where the first ring starts (default 0x10000); each next one on the next page. */
  base?: number;
}

/**
 * The test driver: one queue (block, rng) or several (net, console,
 * multiqueue block). Queue 0's ring operations have shortcuts on the driver.
 */
export class TestDriver {
  readonly mem: GuestMemory;
  readonly dev: VirtioPciDevice;
  readonly queues: DriverQueue[];
  features = 0n;
  readonly #buf = new Uint8Array(8);

  /**
   * @param mem guest RAM
   * @param dev the transport under test
   * @param options queue sizes and where the rings go
   */
  constructor(mem: GuestMemory, dev: VirtioPciDevice, options: TestDriverOptions = {}) {
    this.mem = mem;
    this.dev = dev;
    let base = options.base ?? 0x10000;
    const layout = options.sizes ? { pageAlignedUsed: true } : { indirect: true };
    this.queues = (options.sizes ?? [options.size ?? 64]).map((size) => {
      const q = new DriverQueue(mem, size, base, layout);
      base = (base + q.bytes + 0xfff) & ~0xfff;
      return q;
    });
  }

  /** Queue 0's size. */
  get size(): number {
    return this.queues[0].size;
  }
  /** Queue 0's descriptor table. */
  get desc(): number {
    return this.queues[0].desc;
  }
  /** Queue 0's available ring. */
  get avail(): number {
    return this.queues[0].avail;
  }
  /** Queue 0's used ring. */
  get used(): number {
    return this.queues[0].used;
  }
  /** Queue 0's indirect tables. */
  get indirectArea(): number {
    return this.queues[0].indirectArea;
  }

  read(offset: number, len: number): number {
    const d = this.#buf.subarray(0, len);
    this.dev.barRead(VIRTIO_PCI_BAR, offset, d);
    let v = 0;
    for (let i = len - 1; i >= 0; i--) v = v * 256 + d[i];
    return v;
  }

  write(offset: number, len: number, value: number): void {
    const d = this.#buf.subarray(0, len);
    let v = value;
    for (let i = 0; i < len; i++) {
      d[i] = v % 256;
      v = Math.floor(v / 256);
    }
    this.dev.barWrite(VIRTIO_PCI_BAR, offset, d);
  }

  /** Device config bytes. */
  config(offset: number, len: number): number {
    return this.read(VIRTIO_PCI_DEVICE_OFFSET + offset, len);
  }

  deviceFeatures(): bigint {
    this.write(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    const lo = this.read(VIRTIO_PCI_COMMON_DF, 4);
    this.write(VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    const hi = this.read(VIRTIO_PCI_COMMON_DF, 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  status(): number {
    return this.read(VIRTIO_PCI_COMMON_STATUS, 1);
  }

  /** Writes status 0, waits for the device to finish the reset, clears the rings. */
  reset(): void {
    this.write(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    // The device side may complete the reset on another thread.
    const deadline = Date.now() + 5000;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    while (this.status() !== 0) {
      if (Date.now() > deadline) throw new Error("Device reset did not complete");
      Atomics.wait(nap, 0, 0, 1);
    }
    for (const q of this.queues) q.reset();
  }

  /**
   * Full init sequence over every queue. Returns false when the device
   * refused FEATURES_OK.
   *
   * @param accept features to accept (masked with the offer); VERSION_1 added
   * @param options `vector`: every queue's MSI-X vector, `vectors`: per queue;
   *   `exactFeatures`: exact features to write
   */
  init(
    accept: bigint,
    options: { vector?: number; vectors?: number[]; exactFeatures?: bigint } = {},
  ): boolean {
    this.reset();
    this.write(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    this.write(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    const offered = this.deviceFeatures();
    const f = options.exactFeatures ?? (offered & (accept | featureBit(VIRTIO_F_VERSION_1)));
    this.features = f;
    this.write(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    this.write(VIRTIO_PCI_COMMON_GF, 4, Number(f & 0xffff_ffffn));
    this.write(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    this.write(VIRTIO_PCI_COMMON_GF, 4, Number(f >> 32n));
    const s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    this.write(VIRTIO_PCI_COMMON_STATUS, 1, s);
    if (!(this.status() & VIRTIO_CONFIG_S_FEATURES_OK)) return false;
    this.queues.forEach((q, i) => {
      this.write(VIRTIO_PCI_COMMON_Q_SELECT, 2, i);
      this.write(VIRTIO_PCI_COMMON_Q_SIZE, 2, q.size);
      const vector = options.vectors?.[i] ?? options.vector;
      if (vector !== undefined) this.write(VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
      this.write(VIRTIO_PCI_COMMON_Q_DESCLO, 4, q.desc);
      this.write(VIRTIO_PCI_COMMON_Q_DESCLO + 4, 4, 0);
      this.write(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, q.avail);
      this.write(VIRTIO_PCI_COMMON_Q_AVAILLO + 4, 4, 0);
      this.write(VIRTIO_PCI_COMMON_Q_USEDLO, 4, q.used);
      this.write(VIRTIO_PCI_COMMON_Q_USEDLO + 4, 4, 0);
      this.write(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    });
    this.write(VIRTIO_PCI_COMMON_STATUS, 1, s | VIRTIO_CONFIG_S_DRIVER_OK);
    return true;
  }

  /** Queue 0's free descriptors. */
  get freeCount(): number {
    return this.queues[0].freeCount;
  }

  /**
   * Offers a chain on queue 0 (see {@link DriverQueue.add}).
   *
   * @param segs buffers, readable first
   * @param options `indirect`: in an indirect table
   */
  add(segs: Segment[], options: { indirect?: boolean } = {}): number {
    return this.queues[0].add(segs, options);
  }

  /** Rings queue `index`'s doorbell through the notify register. */
  kick(index = 0): void {
    this.write(VIRTIO_PCI_NOTIFY_OFFSET + VIRTIO_PCI_NOTIFY_MULTIPLIER * index, 2, index);
  }

  /** Sets queue 0's used_event (EVENT_IDX) so the device interrupts after entry `idx`. */
  setUsedEvent(idx: number): void {
    this.queues[0].setUsedEvent(idx);
  }

  /** Whether the device asked for kicks (avail_event / NO_NOTIFY). */
  get eventIdx(): boolean {
    return (this.features & featureBit(VIRTIO_RING_F_EVENT_IDX)) !== 0n;
  }

  /** Collects queue 0's new used entries and frees their descriptors. */
  collect(): UsedElem[] {
    return this.queues[0].collect();
  }
}

/** An InterruptSink that counts, for tests. */
export class CountingSink {
  msixCount = 0;
  vectors: number[] = [];
  level = false;
  raised = 0;
  msix(vector: number): void {
    this.msixCount++;
    this.vectors.push(vector);
  }
  intx(level: boolean): void {
    if (level && !this.level) this.raised++;
    this.level = level;
  }
}

/** Little-endian helpers for building requests. */
export function blkHeader(mem: GuestMemory, addr: number, type: number, sector: number): void {
  mem.writeU32(addr, type);
  mem.writeU32(addr + 4, 0);
  mem.writeU64(addr + 8, BigInt(sector));
}
