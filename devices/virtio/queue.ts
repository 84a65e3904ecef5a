/**
 * The split virtqueue (virtio 1.x, 2.6) as the device sees it, over guest RAM
 * the guest controls: every index, address, length and flag read from the
 * rings is validated before use, and any violation throws
 * {@link VirtqueueError} so the owning device can mark itself broken
 * (DEVICE_NEEDS_RESET) instead of crashing, hanging or touching memory
 * outside guest RAM.
 *
 * @module
 */
import type { GuestMemory } from "../../memory/guest_memory.ts";
import {
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_USED_F_NO_NOTIFY,
} from "./constants.ts";
import { VirtqueueError } from "./violations.ts";

export * from "./violations.ts";

/** The largest queue size the split ring format allows. */
export const VIRTQUEUE_MAX_SIZE = 32768;
/** Bound on the bytes one chain may describe (used.len is a u32). */
export const VIRTQUEUE_MAX_CHAIN_BYTES = 0xffff_ffff;

/**
 * One popped descriptor chain, flattened to segments (indirect tables
 * expanded). Reused across pops so that iteration allocates nothing.
 *
 * @example
 * ```ts
 * import { DescriptorChain } from "./queue.ts";
 * const chain = new DescriptorChain(128);
 * console.log(chain.count); // 0
 * ```
 */
export class DescriptorChain {
  /** Head descriptor index (what goes into the used ring). */
  head = 0;
  /** Number of valid segments. */
  count = 0;
  /** Number of device-readable segments (they come first). */
  readableCount = 0;
  /** Bytes in device-readable segments. */
  readableBytes = 0;
  /** Bytes in device-writable segments. */
  writableBytes = 0;
  /** Guest address of each segment. */
  readonly addr: Float64Array;
  /** Length of each segment. */
  readonly len: Uint32Array;
  /** The guest RAM region of each segment (GuestMemory.regionOf). */
  readonly region: Uint8Array;
  /** Maximum segments this chain object holds. */
  readonly capacity: number;

  /** @param capacity maximum segments a chain may have */
  constructor(capacity: number) {
    this.capacity = capacity;
    this.addr = new Float64Array(capacity);
    this.len = new Uint32Array(capacity);
    this.region = new Uint8Array(capacity);
  }

  /**
   * Copies `dst.length` device-readable bytes, starting `skip` bytes into
   * the chain, to `dst` (fewer if the readable part is shorter).
   *
   * @param mem guest RAM
   * @param skip bytes of the readable part to skip
   * @param dst where the bytes go
   */
  gather(mem: GuestMemory, skip: number, dst: Uint8Array): void {
    const len = dst.length;
    let pos = 0, off = skip;
    for (let i = 0; i < this.readableCount && pos < len; i++) {
      const l = this.len[i];
      if (off >= l) {
        off -= l;
        continue;
      }
      const n = Math.min(l - off, len - pos);
      // The usual case (all of dst from one segment) allocates no view.
      mem.read(this.addr[i] + off, n === len ? dst : dst.subarray(pos, pos + n));
      pos += n;
      off = 0;
    }
  }

  /**
   * Copies `src` into the chain's segments from segment `first` on (the
   * device-writable ones when `first` is readableCount).
   *
   * @param mem guest RAM
   * @param first the first segment to fill
   * @param src the bytes
   */
  scatter(mem: GuestMemory, first: number, src: Uint8Array): void {
    let pos = 0;
    for (let i = first; i < this.count && pos < src.length; i++) {
      const n = Math.min(this.len[i], src.length - pos);
      mem.write(this.addr[i], src.subarray(pos, pos + n));
      pos += n;
    }
  }

  /** Empties the chain for reuse. */
  clear(): void {
    this.head = 0;
    this.count = 0;
    this.readableCount = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
  }
}

/** Guest-programmed layout of a queue, as written through the transport. */
export interface QueueConfig {
  /** Number of descriptors (power of two, <= the device's maximum). */
  size: number;
  /** Guest address of the descriptor table (16-byte aligned). */
  desc: number;
  /** Guest address of the avail (driver) ring (2-byte aligned). */
  avail: number;
  /** Guest address of the used (device) ring (4-byte aligned). */
  used: number;
  /** Whether VIRTIO_RING_F_EVENT_IDX was negotiated. */
  eventIdx?: boolean;
  /** Whether VIRTIO_RING_F_INDIRECT_DESC was negotiated. */
  indirect?: boolean;
}

/**
 * The device side of a split virtqueue.
 *
 * @example
 * ```ts
 * import { GuestMemory } from "../../memory/guest_memory.ts";
 * import { DescriptorChain, SplitQueue } from "./queue.ts";
 * const mem = GuestMemory.fromBuffer(new ArrayBuffer(0x10000));
 * const q = new SplitQueue(mem, 256);
 * q.configure({ size: 16, desc: 0x1000, avail: 0x2000, used: 0x3000 });
 * const chain = new DescriptorChain(256);
 * console.log(q.pop(chain)); // false: the driver has made nothing available
 * ```
 */
export class SplitQueue {
  readonly #mem: GuestMemory;
  readonly #maxSize: number;
  #size = 0;
  #desc = 0;
  #avail = 0;
  #used = 0;
  #eventIdx = false;
  #indirect = false;
  #ready = false;
  #lastAvail = 0;
  #usedIdx = 0;
  /** used idx at the last interrupt decision, for EVENT_IDX. */
  #signalledUsed = 0;
  #signalledValid = false;
  /**
   * The rings as typed arrays over guest RAM, made once at configure()
   * (each ring was range-checked and lies in one region; the alignment the
   * spec requires is the arrays'): a ring access is an element load, not
   * a method call and a region search, which matters most where the code
   * is not optimised yet (the first packets, and every packet under an
   * emulator). Descriptor contents are still validated per pop.
   */
  #availRing: Uint16Array = EMPTY_U16;
  #usedRing16: Uint16Array = EMPTY_U16;
  #usedRing32: Uint32Array = EMPTY_U32;
  #descTable32: Uint32Array = EMPTY_U32;
  #descTable16: Uint16Array = EMPTY_U16;

  /**
   * @param mem guest RAM the rings live in
   * @param maxSize the device's maximum queue size (power of two)
   */
  constructor(mem: GuestMemory, maxSize: number) {
    if (!isPowerOfTwo(maxSize) || maxSize > VIRTQUEUE_MAX_SIZE) {
      throw new RangeError(`Invalid maximum queue size ${maxSize}`);
    }
    this.#mem = mem;
    this.#maxSize = maxSize;
  }

  /** Queue size as configured (0 when not ready). */
  get size(): number {
    return this.#size;
  }
  /** Whether the queue has been configured and may be used. */
  get ready(): boolean {
    return this.#ready;
  }
  /** The next avail ring slot the device will read. */
  get lastAvail(): number {
    return this.#lastAvail;
  }
  /** Guest address of the descriptor table (for a kernel data path). */
  get descAddr(): number {
    return this.#desc;
  }
  /** Guest address of the avail ring. */
  get availAddr(): number {
    return this.#avail;
  }
  /** Guest address of the used ring. */
  get usedAddr(): number {
    return this.#used;
  }
  /** The device's used index (next slot it will fill). */
  get usedIdx(): number {
    return this.#usedIdx;
  }

  /**
   * Validates a guest-programmed layout and makes the queue ready.
   *
   * @param config sizes and ring addresses from the transport
   */
  configure(config: QueueConfig): void {
    this.#ready = false;
    const { size, desc, avail, used } = config;
    if (!isPowerOfTwo(size) || size > this.#maxSize) {
      throw new VirtqueueError(
        `Queue size ${size} is not a power of two up to ${this.#maxSize}`,
        "queue-size",
      );
    }
    if (desc % 16 !== 0 || avail % 2 !== 0 || used % 4 !== 0) {
      throw new VirtqueueError("Virtqueue ring address is misaligned", "ring-alignment");
    }
    const mem = this.#mem;
    if (
      !mem.contains(desc, 16 * size) || !mem.contains(avail, 6 + 2 * size) ||
      !mem.contains(used, 6 + 8 * size)
    ) {
      throw new VirtqueueError("Virtqueue ring lies outside guest RAM", "ring-outside-ram");
    }
    this.#size = size;
    this.#desc = desc;
    this.#avail = avail;
    this.#used = used;
    this.#eventIdx = config.eventIdx ?? false;
    this.#indirect = config.indirect ?? false;
    this.#availRing = u16View(mem, avail, 6 + 2 * size);
    this.#usedRing16 = u16View(mem, used, 6 + 8 * size);
    const usedBytes = mem.slice(used, 4 + 8 * size);
    this.#usedRing32 = new Uint32Array(usedBytes.buffer, usedBytes.byteOffset, 1 + 2 * size);
    const descBytes = mem.slice(desc, 16 * size);
    this.#descTable32 = new Uint32Array(descBytes.buffer, descBytes.byteOffset, 4 * size);
    this.#descTable16 = new Uint16Array(descBytes.buffer, descBytes.byteOffset, 8 * size);
    this.#lastAvail = 0;
    this.#usedIdx = this.#usedRing16[1];
    this.#signalledUsed = this.#usedIdx;
    this.#signalledValid = false;
    this.#ready = true;
  }

  /** Forgets the configuration (device reset). */
  reset(): void {
    this.#ready = false;
    this.#size = 0;
    this.#lastAvail = 0;
    this.#usedIdx = 0;
    this.#signalledValid = false;
    this.#availRing = EMPTY_U16;
    this.#usedRing16 = EMPTY_U16;
    this.#usedRing32 = EMPTY_U32;
    this.#descTable32 = EMPTY_U32;
    this.#descTable16 = EMPTY_U16;
  }

  /**
   * How many chains the driver has made available and the device has not
   * popped; throws when the avail index ran more than a queue ahead.
   *
   * @returns pending chain count
   */
  pending(): number {
    if (!this.#ready) return 0;
    const n = (this.#availRing[1] - this.#lastAvail) & 0xffff;
    if (n > this.#size) {
      throw new VirtqueueError(
        `Avail index moved ${n} entries ahead of a ${this.#size} queue`,
        "avail-index",
      );
    }
    return n;
  }

  /**
   * Pops the next available chain into `chain`, validating every
   * descriptor; returns false when none is available.
   *
   * @param chain reusable chain to fill
   * @returns whether a chain was popped
   */
  pop(chain: DescriptorChain): boolean {
    if (this.pending() === 0) return false;
    const size = this.#size;
    const head = this.#availRing[2 + (this.#lastAvail & (size - 1))];
    if (head >= size) {
      throw new VirtqueueError(`Descriptor head ${head} out of range`, "descriptor-head");
    }
    chain.clear();
    chain.head = head;
    this.#walkTable(chain, head);
    this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
    return true;
  }

  /**
   * Puts the most recently popped chain back (a device that cannot take it
   * now retries later).
   */
  undoPop(): void {
    this.#lastAvail = (this.#lastAvail - 1) & 0xffff;
  }

  /** Walks a chain in the ring's own descriptor table (through its typed arrays). */
  #walkTable(chain: DescriptorChain, first: number): void {
    const d32 = this.#descTable32;
    const d16 = this.#descTable16;
    const size = this.#size;
    let index = first;
    // A chain longer than its table must revisit a descriptor: a loop.
    for (let visited = 0;; visited++) {
      if (visited >= size) {
        throw new VirtqueueError("Descriptor chain loops", "descriptor-loop");
      }
      const lo = d32[4 * index];
      const hi = d32[4 * index + 1];
      const len = d32[4 * index + 2];
      const flags = d16[8 * index + 6];
      const next = d16[8 * index + 7];
      if (hi >= 0x20_0000) {
        throw new VirtqueueError("Descriptor address outside guest RAM", "buffer-outside-ram");
      }
      const addr = hi * 0x1_0000_0000 + lo;
      if (flags & VRING_DESC_F_INDIRECT) {
        this.#indirectTable(chain, addr, len, flags);
      } else {
        this.#addSegment(chain, addr, len, (flags & VRING_DESC_F_WRITE) !== 0);
      }
      if (!(flags & VRING_DESC_F_NEXT)) return;
      if (next >= size) {
        throw new VirtqueueError(`Descriptor next ${next} out of range`, "descriptor-next");
      }
      index = next;
    }
  }

  /** Validates an indirect descriptor and walks its table. */
  #indirectTable(chain: DescriptorChain, addr: number, len: number, flags: number): void {
    if (!this.#indirect) {
      throw new VirtqueueError("Unexpected indirect descriptor", "unexpected-indirect");
    }
    if (flags & VRING_DESC_F_NEXT) {
      throw new VirtqueueError("Indirect descriptor with NEXT set", "indirect-next");
    }
    if (len === 0 || len % 16 !== 0 || len / 16 > VIRTQUEUE_MAX_SIZE) {
      throw new VirtqueueError(`Invalid indirect table length ${len}`, "indirect-table");
    }
    const region = this.#mem.regionOf(addr, len);
    if (region < 0) {
      throw new VirtqueueError("Indirect table outside guest RAM", "indirect-table");
    }
    this.#walkIndirect(chain, addr, len / 16, region);
  }

  /**
   * Walks an indirect table (checked to lie in guest RAM region `region`)
   * through that region's view: a descriptor is four loads, not five method
   * calls with a region search each (a 1 MiB block request is 256 of them).
   */
  #walkIndirect(chain: DescriptorChain, table: number, tableSize: number, region: number) {
    const mem = this.#mem;
    const v = mem.regionView(region);
    const base = table - mem.regionStart(region);
    let index = 0;
    for (let visited = 0;; visited++) {
      if (visited >= tableSize) {
        throw new VirtqueueError("Descriptor chain loops", "descriptor-loop");
      }
      const d = base + 16 * index;
      const hi = v.getUint32(d + 4, true);
      const flags = v.getUint16(d + 12, true);
      if (hi >= 0x20_0000) {
        throw new VirtqueueError("Descriptor address outside guest RAM", "buffer-outside-ram");
      }
      if (flags & VRING_DESC_F_INDIRECT) {
        throw new VirtqueueError("Unexpected indirect descriptor", "unexpected-indirect");
      }
      this.#addSegment(
        chain,
        hi * 0x1_0000_0000 + v.getUint32(d, true),
        v.getUint32(d + 8, true),
        (flags & VRING_DESC_F_WRITE) !== 0,
      );
      if (!(flags & VRING_DESC_F_NEXT)) return;
      const next = v.getUint16(d + 14, true);
      if (next >= tableSize) {
        throw new VirtqueueError(`Descriptor next ${next} out of range`, "descriptor-next");
      }
      index = next;
    }
  }

  #addSegment(chain: DescriptorChain, addr: number, len: number, writable: boolean): void {
    const region = this.#mem.regionOf(addr, len);
    if (region < 0) {
      throw new VirtqueueError("Descriptor buffer outside guest RAM", "buffer-outside-ram");
    }
    const n = chain.count;
    if (n >= chain.capacity) {
      throw new VirtqueueError("Descriptor chain too long", "chain-too-long");
    }
    if (writable) {
      chain.writableBytes += len;
    } else {
      if (chain.writableBytes > 0 || chain.count > chain.readableCount) {
        throw new VirtqueueError(
          "Device-readable descriptor after a writable one",
          "readable-after-writable",
        );
      }
      chain.readableBytes += len;
      chain.readableCount++;
    }
    if (chain.readableBytes + chain.writableBytes > VIRTQUEUE_MAX_CHAIN_BYTES) {
      throw new VirtqueueError("Descriptor chain too large", "chain-too-long");
    }
    chain.addr[n] = addr;
    chain.len[n] = len;
    chain.region[n] = region;
    chain.count = n + 1;
  }

  /**
   * Returns a chain to the driver.
   *
   * @param head the chain's head index
   * @param len bytes the device wrote into it
   */
  pushUsed(head: number, len: number): void {
    if (!this.#ready) return;
    const u32 = this.#usedRing32;
    const slot = this.#usedIdx & (this.#size - 1);
    u32[1 + 2 * slot] = head;
    u32[2 + 2 * slot] = len;
    // The element is written before the index that publishes it (x86 keeps
    // store order; the guest reads idx first, then the element).
    this.#usedIdx = (this.#usedIdx + 1) & 0xffff;
    this.#usedRing16[1] = this.#usedIdx;
  }

  /**
   * Writes a used element `offset` entries past the used index without
   * publishing it; {@link SplitQueue.flushUsed} publishes a batch at once
   * (a mergeable RX frame's buffers must appear together).
   *
   * @param offset entries past the current used index (< queue size)
   * @param head the chain's head index
   * @param len bytes the device wrote into it
   */
  fillUsed(offset: number, head: number, len: number): void {
    if (!this.#ready) return;
    const slot = (this.#usedIdx + offset) & (this.#size - 1);
    this.#usedRing32[1 + 2 * slot] = head;
    this.#usedRing32[2 + 2 * slot] = len;
  }

  /**
   * Publishes `count` elements written with {@link SplitQueue.fillUsed}.
   *
   * @param count elements to publish
   */
  flushUsed(count: number): void {
    if (!this.#ready || count === 0) return;
    this.#usedIdx = (this.#usedIdx + count) & 0xffff;
    this.#usedRing16[1] = this.#usedIdx;
  }

  /**
   * Whether the driver wants an interrupt for the entries pushed since the
   * last call (VRING_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX).
   *
   * @returns true if the device should interrupt now
   */
  needsInterrupt(): boolean {
    if (!this.#ready) return false;
    const newIdx = this.#usedIdx;
    const old = this.#signalledUsed;
    const valid = this.#signalledValid;
    this.#signalledUsed = newIdx;
    this.#signalledValid = true;
    // The used index is published before the driver's wish is read (QEMU's
    // smp_mb in virtio_should_notify): otherwise the load may pass the
    // store, and a driver that just re-enabled interrupts misses this one.
    Atomics.store(FENCE, 0, 0);
    const avail = this.#availRing;
    if (!this.#eventIdx) return (avail[0] & VRING_AVAIL_F_NO_INTERRUPT) === 0;
    if (!valid) return true;
    const usedEvent = avail[2 + this.#size];
    return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - old) & 0xffff);
  }

  /**
   * Asks the driver to notify (kick) again when more is made available, and
   * reports whether something arrived meanwhile (so the caller loops again
   * instead of missing it).
   *
   * @returns true if chains are pending after enabling
   */
  enableNotification(): boolean {
    if (!this.#ready) return false;
    const used = this.#usedRing16;
    if (this.#eventIdx) used[2 + 4 * this.#size] = this.#lastAvail;
    else used[0] &= ~VRING_USED_F_NO_NOTIFY;
    // A full barrier between publishing the wish and reading avail idx (a
    // kick the driver skipped because it read the old wish must be seen).
    Atomics.store(FENCE, 0, 0);
    return this.pending() > 0;
  }

  /**
   * Asks the driver to kick when it makes more available than it has now
   * (for a device that needs more than the pending chains, like a
   * mergeable RX frame): with EVENT_IDX, avail_event is set to the
   * driver's current avail index rather than the device's.
   *
   * @returns chains pending after enabling (compare with the count before)
   */
  enableNotificationBeyond(): number {
    if (!this.#ready) return 0;
    const used = this.#usedRing16;
    if (this.#eventIdx) used[2 + 4 * this.#size] = this.#availRing[1];
    else used[0] &= ~VRING_USED_F_NO_NOTIFY;
    // A full barrier between publishing the event and reading avail idx
    // (x86 may order a load before an earlier store): a seq-cst atomic.
    Atomics.store(FENCE, 0, 0);
    return this.pending();
  }

  /** Tells the driver not to kick while the device is already busy polling. */
  disableNotification(): void {
    if (!this.#ready || this.#eventIdx) return;
    this.#usedRing16[0] |= VRING_USED_F_NO_NOTIFY;
  }
}

const EMPTY_U16 = new Uint16Array(0);
const EMPTY_U32 = new Uint32Array(0);

/** A Uint16Array over guest range [addr, addr+bytes) (checked: one region, 2-byte aligned). */
function u16View(mem: GuestMemory, addr: number, bytes: number): Uint16Array {
  const b = mem.slice(addr, bytes);
  return new Uint16Array(b.buffer, b.byteOffset, bytes >> 1);
}

/** Target of the seq-cst store used as a full memory barrier. */
const FENCE = new Int32Array(new SharedArrayBuffer(4));

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
