/**
 * virtio-blk (virtio spec 5.2): a disk image served through one virtqueue.
 * Data moves between the file and guest RAM by preadv/pwritev on host
 * addresses of guest buffers, through an aio backend (thread pool,
 * io_uring, or {@link SyncAio} in tests); JavaScript never copies it.
 *
 * @module
 */
import type { GuestMemory } from "../../memory/guest_memory.ts";
import { libc } from "../../sys/libc.ts";
import { EOPNOTSUPP, errno } from "../../sys/errno.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, mmap, PROT_READ } from "../../sys/fd.ts";
import type { AioRequest, IoVec } from "../../aio/types.ts";
import {
  featureBit,
  VIRTIO_BLK_CFG_BLK_SIZE,
  VIRTIO_BLK_CFG_CAPACITY,
  VIRTIO_BLK_CFG_DISCARD_ALIGN,
  VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS,
  VIRTIO_BLK_CFG_MAX_DISCARD_SEG,
  VIRTIO_BLK_CFG_MAX_WZ_SECTORS,
  VIRTIO_BLK_CFG_MAX_WZ_SEG,
  VIRTIO_BLK_CFG_NUM_QUEUES,
  VIRTIO_BLK_CFG_SEG_MAX,
  VIRTIO_BLK_CFG_SIZE,
  VIRTIO_BLK_CFG_WZ_MAY_UNMAP,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
  VIRTIO_ID_BLOCK,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from "./constants.ts";
import type { VirtioContext, VirtioDevice } from "./device.ts";
import { DescriptorChain, type SplitQueue, VirtqueueError } from "./queue.ts";
import type { BlockAio } from "./sync_io.ts";

/** Sector size of the virtio-blk protocol. */
export const SECTOR_SIZE = 512;
/** Most ranges in one discard / write-zeroes request. */
export const VIRTIO_BLK_MAX_DISCARD_SEG = 32;
/** Most sectors one discard / write-zeroes range may cover (2 GiB). */
export const VIRTIO_BLK_MAX_DISCARD_SECTORS = 0x40_0000;

const FALLOC_FL_KEEP_SIZE = 1;
const FALLOC_FL_PUNCH_HOLE = 2;
const FALLOC_FL_ZERO_RANGE = 0x10;
const ZERO_CHUNK = 1 << 20;
const HEADER_BYTES = 16;

/** The disk a {@link VirtioBlock} serves. */
export interface BlockDisk {
  /** Open file descriptor of the image. */
  readonly fd: number;
  /** Size in bytes (a multiple of 512). */
  readonly size: number;
  /** Whether writes are refused. */
  readonly readOnly: boolean;
}

/** Options for {@link VirtioBlock}. */
export interface VirtioBlockOptions {
  /** The image. */
  disk: BlockDisk;
  /** Where reads, writes and flushes go. */
  aio: BlockAio;
  /** Serial for GET_ID (up to 20 bytes). */
  serial?: string;
  /** Queue size (power of two, default 256). */
  queueSize?: number;
  /** Logical block size reported (default 512). */
  blockSize?: number;
}

/** One in-flight request, reused per descriptor head. */
class BlockRequest {
  head = 0;
  statusAddr = 0;
  usedLen = 0;
  expected = 0;
  inFlight = false;
  /** Device generation (bumped at each reset) this request belongs to. */
  generation = 0;
  readonly req: AioRequest & { iov: IoVec[]; offset: number };
  readonly pool: IoVec[] = [];
  readonly done: (result: number) => void;

  constructor(complete: (r: BlockRequest, result: number) => void) {
    this.req = { op: "preadv", fd: -1, iov: [], offset: 0 };
    this.done = (result: number) => complete(this, result);
  }
}

/**
 * The virtio-blk device model.
 *
 * @example
 * ```ts ignore
 * const blk = new VirtioBlock({ disk, aio: new SyncAio(), serial: "disk0" });
 * const transport = new VirtioPciDevice(virtioPciSpecOf(blk));
 * ```
 */
export class VirtioBlock implements VirtioDevice {
  /** VIRTIO_ID_BLOCK. */
  readonly deviceType = VIRTIO_ID_BLOCK;
  /** One request queue. */
  readonly numQueues = 1;
  /** Maximum queue size. */
  readonly queueMaxSize: number;
  /** Offered features. */
  readonly deviceFeatures: bigint;
  /** sizeof(struct virtio_blk_config). */
  readonly configSize = VIRTIO_BLK_CFG_SIZE;
  /** PCI class: mass storage, SCSI (what Linux and QEMU show). */
  readonly pciClass = 0x010000;
  readonly #disk: BlockDisk;
  readonly #aio: BlockAio;
  readonly #serial = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  readonly #blockSize: number;
  readonly #chain: DescriptorChain;
  #requests: BlockRequest[] = [];
  #ctx: VirtioContext | null = null;
  #queue: SplitQueue | null = null;
  #inProcess = false;
  #signalPending = false;
  #stalled = false;
  #zeroes: Uint8Array | null = null;
  #generation = 0;
  #stale = 0;
  #drained: (() => void) | null = null;
  readonly #scratch = new Uint8Array(HEADER_BYTES);
  readonly #scratchView = new DataView(this.#scratch.buffer);
  readonly #complete = (r: BlockRequest, result: number) => this.#onComplete(r, result);

  /** @param options disk, aio backend, serial */
  constructor(options: VirtioBlockOptions) {
    this.#disk = options.disk;
    this.#aio = options.aio;
    this.queueMaxSize = options.queueSize ?? 256;
    this.#blockSize = options.blockSize ?? SECTOR_SIZE;
    if (this.#disk.size % SECTOR_SIZE !== 0) {
      throw new RangeError(`Disk size ${this.#disk.size} is not a multiple of 512`);
    }
    new TextEncoder().encodeInto(
      (options.serial ?? "").slice(0, VIRTIO_BLK_ID_BYTES),
      this.#serial,
    );
    let f = featureBit(VIRTIO_BLK_F_FLUSH) | featureBit(VIRTIO_BLK_F_BLK_SIZE) |
      featureBit(VIRTIO_BLK_F_SEG_MAX) | featureBit(VIRTIO_RING_F_EVENT_IDX) |
      featureBit(VIRTIO_RING_F_INDIRECT_DESC);
    if (this.#disk.readOnly) f |= featureBit(VIRTIO_BLK_F_RO);
    else f |= featureBit(VIRTIO_BLK_F_DISCARD) | featureBit(VIRTIO_BLK_F_WRITE_ZEROES);
    this.deviceFeatures = f;
    this.#chain = new DescriptorChain(this.queueMaxSize);
    for (let i = 0; i < this.queueMaxSize; i++) {
      this.#requests.push(new BlockRequest(this.#complete));
    }
  }

  /** Disk capacity in 512-byte sectors. */
  get capacity(): number {
    return this.#disk.size / SECTOR_SIZE;
  }

  /** @param config the device configuration bytes to fill */
  initConfig(config: Uint8Array): void {
    const v = new DataView(config.buffer, config.byteOffset, config.byteLength);
    v.setBigUint64(VIRTIO_BLK_CFG_CAPACITY, BigInt(this.capacity), true);
    v.setUint32(VIRTIO_BLK_CFG_SEG_MAX, this.queueMaxSize - 2, true);
    v.setUint32(VIRTIO_BLK_CFG_BLK_SIZE, this.#blockSize, true);
    v.setUint16(VIRTIO_BLK_CFG_NUM_QUEUES, 1, true);
    v.setUint32(VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, VIRTIO_BLK_MAX_DISCARD_SECTORS, true);
    v.setUint32(VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VIRTIO_BLK_MAX_DISCARD_SEG, true);
    v.setUint32(VIRTIO_BLK_CFG_DISCARD_ALIGN, this.#blockSize / SECTOR_SIZE, true);
    v.setUint32(VIRTIO_BLK_CFG_MAX_WZ_SECTORS, VIRTIO_BLK_MAX_DISCARD_SECTORS, true);
    v.setUint32(VIRTIO_BLK_CFG_MAX_WZ_SEG, VIRTIO_BLK_MAX_DISCARD_SEG, true);
    config[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
  }

  /** @param ctx queues and signalling from the transport */
  activate(ctx: VirtioContext): void {
    this.#ctx = ctx;
    this.#queue = ctx.queues[0] ?? null;
  }

  /**
   * Forgets in-flight requests (their completions are dropped) and calls
   * `drained` once none of them can still write guest RAM.
   *
   * @param drained called when the reset may complete
   */
  reset(drained: () => void): void {
    this.#ctx = null;
    this.#queue = null;
    this.#stalled = false;
    this.#generation++;
    this.#requests = this.#requests.map((r) => {
      if (!r.inFlight) return r;
      this.#stale++;
      return new BlockRequest(this.#complete);
    });
    if (this.#stale === 0) drained();
    else this.#drained = drained;
  }

  /** Requests submitted before the last reset that have not completed. */
  get staleRequests(): number {
    return this.#stale;
  }

  /** @param index queue index (only 0 exists) */
  processQueue(index: number): void {
    const q = this.#queue;
    const ctx = this.#ctx;
    if (index !== 0 || !q || !ctx || this.#inProcess) return;
    this.#inProcess = true;
    try {
      for (;;) {
        q.disableNotification();
        while (!ctx.broken && !this.#stalled && q.pop(this.#chain)) this.#handle(q, ctx);
        if (ctx.broken || this.#stalled || !q.enableNotification()) break;
      }
    } finally {
      this.#inProcess = false;
      if (this.#signalPending && this.#ctx === ctx && !ctx.broken) {
        this.#signalPending = false;
        ctx.signalUsed(0);
      }
    }
  }

  /** Starts one request from the chain just popped. */
  #handle(q: SplitQueue, ctx: VirtioContext): void {
    const chain = this.#chain;
    const mem = ctx.mem;
    if (chain.readableBytes < HEADER_BYTES) {
      throw new VirtqueueError("Block request header too short");
    }
    if (chain.writableBytes < 1) throw new VirtqueueError("Block request has no status byte");
    const r = this.#requests[chain.head];
    if (r.inFlight) throw new VirtqueueError(`Descriptor head ${chain.head} already in flight`);
    // Status: the last byte of the last non-empty writable segment.
    let last = chain.count - 1;
    while (chain.len[last] === 0) last--;
    r.head = chain.head;
    r.statusAddr = chain.addr[last] + chain.len[last] - 1;
    this.#gather(mem, 0, HEADER_BYTES, this.#scratch);
    const type = this.#scratchView.getUint32(0, true);
    const sectorHi = this.#scratchView.getUint32(12, true);
    const sector = sectorHi * 0x1_0000_0000 + this.#scratchView.getUint32(8, true);
    const disk = this.#disk;
    switch (type) {
      case VIRTIO_BLK_T_IN:
      case VIRTIO_BLK_T_OUT: {
        const write = type === VIRTIO_BLK_T_OUT;
        const len = write ? chain.readableBytes - HEADER_BYTES : chain.writableBytes - 1;
        const offset = sector * SECTOR_SIZE;
        if (
          (write && disk.readOnly) || len % SECTOR_SIZE !== 0 || sectorHi >= 0x20_0000 ||
          offset + len > disk.size
        ) {
          return this.#finish(q, ctx, r, VIRTIO_BLK_S_IOERR, 1);
        }
        r.req.op = write ? "pwritev" : "preadv";
        r.req.fd = disk.fd;
        r.req.offset = offset;
        this.#buildIov(mem, r, write ? 0 : chain.readableCount, write ? HEADER_BYTES : 0, len);
        r.expected = len;
        r.usedLen = write ? 1 : len + 1;
        return this.#submit(q, r);
      }
      case VIRTIO_BLK_T_FLUSH:
        r.req.op = "fdatasync";
        r.req.fd = disk.fd;
        r.req.offset = 0;
        r.req.iov.length = 0;
        r.expected = 0;
        r.usedLen = 1;
        return this.#submit(q, r);
      case VIRTIO_BLK_T_GET_ID: {
        const n = Math.min(VIRTIO_BLK_ID_BYTES, chain.writableBytes - 1);
        this.#scatter(mem, chain.readableCount, this.#serial.subarray(0, n));
        return this.#finish(q, ctx, r, VIRTIO_BLK_S_OK, n + 1);
      }
      case VIRTIO_BLK_T_DISCARD:
      case VIRTIO_BLK_T_WRITE_ZEROES:
        return this.#finish(q, ctx, r, this.#discard(mem, type), 1);
      default:
        return this.#finish(q, ctx, r, VIRTIO_BLK_S_UNSUPP, 1);
    }
  }

  #submit(q: SplitQueue, r: BlockRequest): void {
    r.inFlight = true;
    r.generation = this.#generation;
    try {
      this.#aio.submit(r.req, r.done);
    } catch (e) {
      r.inFlight = false;
      if (!(e instanceof RangeError)) throw e;
      // Backend full: retry this chain when a request completes.
      q.undoPop();
      this.#stalled = true;
    }
  }

  /** Runs on the loop when the backend finishes a request (inline for SyncAio). */
  #onComplete(r: BlockRequest, result: number): void {
    if (!r.inFlight) return;
    r.inFlight = false;
    // A request from before a reset: the guest has forgotten it.
    if (r.generation !== this.#generation) {
      if (--this.#stale === 0 && this.#drained) {
        const done = this.#drained;
        this.#drained = null;
        done();
      }
      return;
    }
    const ctx = this.#ctx;
    const q = this.#queue;
    if (!ctx || !q || ctx.broken) return;
    const ok = result >= 0 && result === r.expected;
    try {
      this.#finish(q, ctx, r, ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR, ok ? r.usedLen : 1);
      if (this.#stalled && !this.#inProcess) {
        this.#stalled = false;
        this.processQueue(0);
      }
    } catch (e) {
      // This entry point is not under the transport's guard: contain it here.
      ctx.markBroken(e instanceof Error ? e.message : String(e));
    }
  }

  /** Writes the status byte, then publishes the used entry. */
  #finish(q: SplitQueue, ctx: VirtioContext, r: BlockRequest, status: number, len: number): void {
    ctx.mem.writeU8(r.statusAddr, status);
    q.pushUsed(r.head, len);
    if (this.#inProcess) this.#signalPending = true;
    else ctx.signalUsed(0);
  }

  /** Copies `dst.length` readable bytes starting at byte `skip` of the chain. */
  #gather(mem: GuestMemory, skip: number, len: number, dst: Uint8Array): void {
    const c = this.#chain;
    let pos = 0, off = skip;
    for (let i = 0; i < c.readableCount && pos < len; i++) {
      const l = c.len[i];
      if (off >= l) {
        off -= l;
        continue;
      }
      const n = Math.min(l - off, len - pos);
      dst.set(mem.slice(c.addr[i] + off, n), pos);
      pos += n;
      off = 0;
    }
  }

  /** Copies src into the writable segments starting at segment `first`. */
  #scatter(mem: GuestMemory, first: number, src: Uint8Array): void {
    const c = this.#chain;
    let pos = 0;
    for (let i = first; i < c.count && pos < src.length; i++) {
      const n = Math.min(c.len[i], src.length - pos);
      mem.write(c.addr[i], src.subarray(pos, pos + n));
      pos += n;
    }
  }

  /** Fills r.req.iov with `len` bytes of segments from `first`, skipping `skip` bytes. */
  #buildIov(mem: GuestMemory, r: BlockRequest, first: number, skip: number, len: number): void {
    const c = this.#chain;
    const iov = r.req.iov;
    iov.length = 0;
    let left = len, off = skip;
    for (let i = first; i < c.count && left > 0; i++) {
      const l = c.len[i];
      if (off >= l) {
        off -= l;
        continue;
      }
      const n = Math.min(l - off, left);
      let v = r.pool[iov.length];
      if (!v) {
        v = { addr: 0n, len: 0 };
        r.pool.push(v);
      }
      v.addr = mem.hostAddress(c.addr[i] + off, n);
      v.len = n;
      iov.push(v);
      left -= n;
      off = 0;
    }
  }

  /** DISCARD / WRITE_ZEROES: validated ranges, each a fallocate. */
  #discard(mem: GuestMemory, type: number): number {
    const disk = this.#disk;
    if (disk.readOnly) return VIRTIO_BLK_S_IOERR;
    const c = this.#chain;
    const bytes = c.readableBytes - HEADER_BYTES;
    const n = bytes / 16;
    if (bytes === 0 || bytes % 16 !== 0 || n > VIRTIO_BLK_MAX_DISCARD_SEG) {
      return VIRTIO_BLK_S_IOERR;
    }
    const seg = this.#scratch;
    const view = this.#scratchView;
    for (let i = 0; i < n; i++) {
      this.#gather(mem, HEADER_BYTES + 16 * i, 16, seg);
      const sectorHi = view.getUint32(4, true);
      const sector = sectorHi * 0x1_0000_0000 + view.getUint32(0, true);
      const count = view.getUint32(8, true);
      const flags = view.getUint32(12, true);
      const unmap = (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0;
      if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) return VIRTIO_BLK_S_UNSUPP;
      if (type === VIRTIO_BLK_T_DISCARD && unmap) return VIRTIO_BLK_S_UNSUPP;
      if (count > VIRTIO_BLK_MAX_DISCARD_SECTORS || sectorHi >= 0x20_0000) {
        return VIRTIO_BLK_S_IOERR;
      }
      const offset = sector * SECTOR_SIZE;
      const len = count * SECTOR_SIZE;
      if (offset + len > disk.size) return VIRTIO_BLK_S_IOERR;
      if (len === 0) continue;
      const ok = type === VIRTIO_BLK_T_DISCARD
        ? this.#fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) >= 0 ||
          errno() === EOPNOTSUPP
        : this.#writeZeroes(offset, len, unmap);
      if (!ok) return VIRTIO_BLK_S_IOERR;
    }
    return VIRTIO_BLK_S_OK;
  }

  #fallocate(mode: number, offset: number, len: number): number {
    return libc.fallocate(this.#disk.fd, mode, BigInt(offset), BigInt(len));
  }

  #writeZeroes(offset: number, len: number, unmap: boolean): boolean {
    if (unmap && this.#fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) >= 0) {
      return true;
    }
    if (this.#fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, len) >= 0) return true;
    // No fallocate support: write zeros from a page-aligned buffer (O_DIRECT safe).
    if (!this.#zeroes) {
      const addr = mmap(ZERO_CHUNK, { prot: PROT_READ, flags: MAP_PRIVATE | MAP_ANONYMOUS });
      this.#zeroes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(
        Deno.UnsafePointer.create(addr)!,
        ZERO_CHUNK,
      ));
    }
    const zeroPtr = Deno.UnsafePointer.of(this.#zeroes);
    for (let done = 0; done < len;) {
      const n = Math.min(ZERO_CHUNK, len - done);
      const w = Number(libc.pwrite_ptr(this.#disk.fd, zeroPtr, BigInt(n), BigInt(offset + done)));
      if (w <= 0) return false;
      done += w;
    }
    return true;
  }
}
