/**
 * A TypeScript guest driver for devices with several queues (virtio-net,
 * virtio-console), for tests and benchmarks: it programs a
 * {@link VirtioPciDevice} through its BAR like Linux's virtio_pci_modern
 * and keeps one split ring per queue in guest RAM.
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
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_Q_USEDLO,
  VIRTIO_PCI_COMMON_STATUS,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
} from "./constants.ts";
import {
  VIRTIO_PCI_BAR,
  VIRTIO_PCI_DEVICE_OFFSET,
  VIRTIO_PCI_NOTIFY_MULTIPLIER,
  VIRTIO_PCI_NOTIFY_OFFSET,
  type VirtioPciDevice,
} from "./pci.ts";
import type { Segment, UsedElem } from "./_test_driver.ts";

/** The driver side of one split ring. */
export class DriverQueue {
  readonly mem: GuestMemory;
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  #free: number[] = [];
  #chainLen = new Map<number, number>();
  #availIdx = 0;
  #lastUsed = 0;

  constructor(mem: GuestMemory, size: number, base: number) {
    this.mem = mem;
    this.size = size;
    this.desc = base;
    this.avail = base + 16 * size;
    this.used = (this.avail + 6 + 2 * size + 0xfff) & ~0xfff;
  }

  /** Bytes this ring occupies from its base. */
  get bytes(): number {
    return this.used + 6 + 8 * this.size - this.desc;
  }

  reset(): void {
    this.mem.fill(this.desc, this.bytes, 0);
    this.#free = [];
    for (let i = this.size - 1; i >= 0; i--) this.#free.push(i);
    this.#chainLen.clear();
    this.#availIdx = 0;
    this.#lastUsed = 0;
  }

  get freeCount(): number {
    return this.#free.length;
  }

  /** Offers a chain; returns its head, or -1 without enough descriptors. */
  add(segs: Segment[]): number {
    if (this.#free.length < segs.length) return -1;
    const ids = segs.map(() => this.#free.pop()!);
    segs.forEach((s, i) => {
      const d = this.desc + 16 * ids[i];
      const more = i + 1 < segs.length;
      this.mem.writeU64(d, BigInt(s.addr));
      this.mem.writeU32(d + 8, s.len);
      this.mem.writeU16(
        d + 12,
        (more ? VRING_DESC_F_NEXT : 0) | (s.write ? VRING_DESC_F_WRITE : 0),
      );
      this.mem.writeU16(d + 14, more ? ids[i + 1] : 0);
    });
    this.#chainLen.set(ids[0], segs.length);
    this.mem.writeU16(this.avail + 4 + 2 * (this.#availIdx % this.size), ids[0]);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    this.mem.writeU16(this.avail + 2, this.#availIdx);
    return ids[0];
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

/** The multi-queue test driver. */
export class MqTestDriver {
  readonly mem: GuestMemory;
  readonly dev: VirtioPciDevice;
  readonly queues: DriverQueue[];
  features = 0n;
  readonly #buf = new Uint8Array(8);

  /**
   * @param mem guest RAM
   * @param dev the transport under test
   * @param options queue sizes (one per queue) and where the rings start
   */
  constructor(
    mem: GuestMemory,
    dev: VirtioPciDevice,
    options: { sizes: number[]; base?: number },
  ) {
    this.mem = mem;
    this.dev = dev;
    let base = options.base ?? 0x10000;
    this.queues = options.sizes.map((size) => {
      const q = new DriverQueue(mem, size, base);
      base = (base + q.bytes + 0xfff) & ~0xfff;
      return q;
    });
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

  /** Writes status 0 and waits for the device to finish the reset. */
  reset(): void {
    this.write(VIRTIO_PCI_COMMON_STATUS, 1, 0);
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
   */
  init(accept: bigint): boolean {
    this.reset();
    this.write(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    this.write(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    const f = this.deviceFeatures() & (accept | featureBit(VIRTIO_F_VERSION_1));
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

  /** Rings queue `index`'s doorbell. */
  kick(index: number): void {
    this.write(VIRTIO_PCI_NOTIFY_OFFSET + VIRTIO_PCI_NOTIFY_MULTIPLIER * index, 2, index);
  }
}
