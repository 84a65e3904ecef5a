/**
 * virtio-blk (virtio spec 5.2): a disk image served through one request
 * queue, or several with VIRTIO_BLK_F_MQ (QEMU's `num-queues`): Linux's
 * blk-mq then gives each vCPU (or group of vCPUs) its own queue, with its
 * own doorbell (ioeventfd) and MSI-X vector, so vCPUs never contend for one
 * ring and completions interrupt the vCPU that submitted. All queues run
 * on the loop that owns the device and share its aio engine.
 * Data moves between the file and guest RAM by preadv/pwritev on host
 * addresses of guest buffers, through an aio backend (thread pool,
 * io_uring, or {@link SyncAio} in tests); JavaScript never copies it.
 *
 * @module
 */
import { AioQueueFullError } from "../../aio/types.ts";
import type { Bh, CallbackOptions } from "../../mainloop/types.ts";
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
  VIRTIO_BLK_F_MQ,
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
  VIRTIO_ID_BLOCK,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from "./constants.ts";
import type { VirtioContext, VirtioDevice } from "./device.ts";
import { VirtqueueError } from "./queue.ts";
import type { BlockAio } from "./sync_io.ts";
import { parseDiscardRanges } from "./block_discard.ts";
import type { BlockRequest, BlockRequestCounts } from "./block_request.ts";
import { BlockVq } from "./block_vq.ts";
export type { BlockRequestCounts } from "./block_request.ts";

/** Sector size of the virtio-blk protocol. */
export const SECTOR_SIZE = 512;
export {
  VIRTIO_BLK_DISCARD_PIECE,
  VIRTIO_BLK_MAX_DISCARD_SECTORS,
  VIRTIO_BLK_MAX_DISCARD_SEG,
} from "./block_discard.ts";
import * as discard from "./block_discard.ts";

/** Chains one kick takes before yielding to the loop (as QEMU and Firecracker bound theirs). */
export const VIRTIO_BLK_BATCH = 64;

/** Most request queues a device may have (QEMU allows 1024; MSI-X vectors and memory say less). */
export const VIRTIO_BLK_MAX_QUEUES = 64;

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
  /** Request queues (default 1; more offers VIRTIO_BLK_F_MQ). */
  numQueues?: number;
  /** Queue size (power of two, default 256). */
  queueSize?: number;
  /** Logical block size reported (default 512). */
  blockSize?: number;
  /**
   * The loop the queue runs on: a kick handles at most `batch` chains, then
   * the rest runs from a bottom half of this loop, so other fds, timers and
   * devices get their turn. Without it (unit tests) a kick drains the queue.
   */
  loop?: {
    bh(cb: () => void, name?: string, options?: CallbackOptions): Pick<Bh, "schedule">;
  };
  /** Chains per turn (default {@link VIRTIO_BLK_BATCH}). */
  batch?: number;
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
  /** processQueue starts no promise reactions: kicks are registered `sync`. */
  readonly syncQueues = true;
  /** Request queues. */
  readonly numQueues: number;
  /** Maximum queue size. */
  readonly queueMaxSize: number;
  /** Offered features. */
  readonly deviceFeatures: bigint;
  /** sizeof(struct virtio_blk_config). */
  readonly configSize = VIRTIO_BLK_CFG_SIZE;
  /** PCI class: mass storage, SCSI (what Linux and QEMU show). */
  readonly pciClass = 0x010000;
  /** Requests started since creation, by type. */
  readonly requestCounts: BlockRequestCounts = {
    in: 0,
    out: 0,
    flush: 0,
    getId: 0,
    discard: 0,
    writeZeroes: 0,
    unsupported: 0,
  };
  readonly #disk: BlockDisk;
  readonly #aio: BlockAio;
  readonly #serial = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  readonly #blockSize: number;
  readonly #vqs: BlockVq[] = [];
  #ctx: VirtioContext | null = null;
  /** Queues inside their processing loop (a completion then waits its turn). */
  #processing = 0;
  /** Pieces of started requests that found the backend full. */
  #waiting: BlockRequest[] = [];
  /** Pieces to submit once the current submit returns (their predecessor completed inline). */
  readonly #inline: BlockRequest[] = [];
  #depth = 0;
  readonly #batch: number;
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
    this.#batch = options.batch ?? VIRTIO_BLK_BATCH;
    if (!Number.isInteger(this.#batch) || this.#batch < 1) {
      throw new RangeError(`Invalid batch ${this.#batch}`);
    }
    this.numQueues = options.numQueues ?? 1;
    if (
      !Number.isInteger(this.numQueues) || this.numQueues < 1 ||
      this.numQueues > VIRTIO_BLK_MAX_QUEUES
    ) {
      throw new RangeError(
        `Invalid virtio-blk queue count ${this.numQueues}: 1..${VIRTIO_BLK_MAX_QUEUES}`,
      );
    }
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
    if (this.numQueues > 1) f |= featureBit(VIRTIO_BLK_F_MQ);
    if (this.#disk.readOnly) f |= featureBit(VIRTIO_BLK_F_RO);
    else f |= featureBit(VIRTIO_BLK_F_DISCARD) | featureBit(VIRTIO_BLK_F_WRITE_ZEROES);
    this.deviceFeatures = f;
    for (let i = 0; i < this.numQueues; i++) {
      const vq = new BlockVq(i, { size: this.queueMaxSize, complete: this.#complete });
      vq.bh = options.loop?.bh(() => this.#resume(vq), `virtio-blk-q${i}`, { sync: true }) ?? null;
      this.#vqs.push(vq);
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
    v.setUint16(VIRTIO_BLK_CFG_NUM_QUEUES, this.numQueues, true);
    v.setUint32(VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, discard.VIRTIO_BLK_MAX_DISCARD_SECTORS, true);
    v.setUint32(VIRTIO_BLK_CFG_MAX_DISCARD_SEG, discard.VIRTIO_BLK_MAX_DISCARD_SEG, true);
    v.setUint32(VIRTIO_BLK_CFG_DISCARD_ALIGN, this.#blockSize / SECTOR_SIZE, true);
    v.setUint32(VIRTIO_BLK_CFG_MAX_WZ_SECTORS, discard.VIRTIO_BLK_MAX_DISCARD_SECTORS, true);
    v.setUint32(VIRTIO_BLK_CFG_MAX_WZ_SEG, discard.VIRTIO_BLK_MAX_DISCARD_SEG, true);
    config[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
  }

  /** @param ctx queues and signalling from the transport */
  activate(ctx: VirtioContext): void {
    this.#ctx = ctx;
    // Without VIRTIO_BLK_F_MQ accepted the driver uses queue 0 alone.
    const mq = (ctx.features & featureBit(VIRTIO_BLK_F_MQ)) !== 0n;
    for (const vq of this.#vqs) {
      vq.queue = vq.index === 0 || mq ? ctx.queues[vq.index] ?? null : null;
    }
  }

  /**
   * Forgets in-flight requests (their completions are dropped) and calls
   * `drained` once none of them can still write guest RAM.
   *
   * @param drained called when the reset may complete
   */
  reset(drained: () => void): void {
    this.#ctx = null;
    this.#waiting.length = 0;
    this.#inline.length = 0;
    this.#generation++;
    for (const vq of this.#vqs) this.#stale += vq.reset();
    if (this.#stale === 0) drained();
    else this.#drained = drained;
  }

  /** Requests submitted before the last reset that have not completed. */
  get staleRequests(): number {
    return this.#stale;
  }

  /** @param index request queue index */
  processQueue(index: number): void {
    const vq = this.#vqs[index];
    const q = vq?.queue;
    const ctx = this.#ctx;
    if (!q || !ctx || vq.inProcess) return;
    vq.inProcess = true;
    this.#processing++;
    let budget = this.#batch;
    try {
      for (;;) {
        q.disableNotification();
        while (!ctx.broken && !vq.stalled && budget > 0 && q.pop(vq.chain)) {
          budget--;
          this.#handle(vq, ctx);
        }
        if (ctx.broken || vq.stalled) break;
        if (budget === 0) {
          // Yield: notifications stay off, the BH picks up where this left.
          if (vq.bh) {
            vq.bh.schedule();
            break;
          }
          budget = this.#batch;
          continue;
        }
        if (!q.enableNotification()) break;
      }
    } finally {
      vq.inProcess = false;
      this.#processing--;
      if (vq.signalPending && this.#ctx === ctx && !ctx.broken) {
        vq.signalPending = false;
        ctx.signalUsed(index);
      }
    }
  }

  /** Starts one request from the chain just popped. */
  #handle(vq: BlockVq, ctx: VirtioContext): void {
    const chain = vq.chain;
    const mem = ctx.mem;
    if (chain.readableBytes < HEADER_BYTES) {
      throw new VirtqueueError("Block request header too short", "blk-request-format");
    }
    if (chain.writableBytes < 1) {
      throw new VirtqueueError("Block request has no status byte", "blk-request-format");
    }
    const r = vq.requests[chain.head];
    if (r.inFlight) {
      throw new VirtqueueError(`Descriptor head ${chain.head} already in flight`, "head-in-flight");
    }
    // Status: the last byte of the last non-empty writable segment.
    let last = chain.count - 1;
    while (chain.len[last] === 0) last--;
    r.head = chain.head;
    r.statusAddr = chain.addr[last] + chain.len[last] - 1;
    chain.gather(mem, 0, this.#scratch);
    const type = this.#scratchView.getUint32(0, true);
    const sectorHi = this.#scratchView.getUint32(12, true);
    const sector = sectorHi * 0x1_0000_0000 + this.#scratchView.getUint32(8, true);
    const disk = this.#disk;
    switch (type) {
      case VIRTIO_BLK_T_IN:
      case VIRTIO_BLK_T_OUT: {
        const write = type === VIRTIO_BLK_T_OUT;
        if (write) this.requestCounts.out++;
        else this.requestCounts.in++;
        const len = write ? chain.readableBytes - HEADER_BYTES : chain.writableBytes - 1;
        const offset = sector * SECTOR_SIZE;
        if (
          (write && disk.readOnly) || len % SECTOR_SIZE !== 0 || sectorHi >= 0x20_0000 ||
          offset + len > disk.size
        ) {
          return this.#finish(vq, ctx, r, VIRTIO_BLK_S_IOERR, 1);
        }
        // Nothing to move (as QEMU completes an empty request): done.
        if (len === 0) return this.#finish(vq, ctx, r, VIRTIO_BLK_S_OK, 1);
        r.req.op = write ? "pwritev" : "preadv";
        r.req.fd = disk.fd;
        r.req.offset = offset;
        vq.buildIov(mem, r, write ? 0 : chain.readableCount, write ? HEADER_BYTES : 0, len);
        r.expected = len;
        r.usedLen = write ? 1 : len + 1;
        return this.#submit(vq, r);
      }
      case VIRTIO_BLK_T_FLUSH:
        this.requestCounts.flush++;
        r.req.op = "fdatasync";
        r.req.fd = disk.fd;
        r.req.offset = 0;
        r.expected = 0;
        r.usedLen = 1;
        return this.#submit(vq, r);
      case VIRTIO_BLK_T_GET_ID: {
        this.requestCounts.getId++;
        const n = Math.min(VIRTIO_BLK_ID_BYTES, chain.writableBytes - 1);
        chain.scatter(mem, chain.readableCount, this.#serial.subarray(0, n));
        return this.#finish(vq, ctx, r, VIRTIO_BLK_S_OK, n + 1);
      }
      case VIRTIO_BLK_T_DISCARD:
      case VIRTIO_BLK_T_WRITE_ZEROES: {
        if (type === VIRTIO_BLK_T_DISCARD) this.requestCounts.discard++;
        else this.requestCounts.writeZeroes++;
        r.expected = 0;
        r.usedLen = 1;
        const status = disk.readOnly
          ? VIRTIO_BLK_S_IOERR
          : parseDiscardRanges(chain, mem, type, disk.size, r.ranges);
        if (status !== VIRTIO_BLK_S_OK || r.ranges.done) return this.#finish(vq, ctx, r, status, 1);
        r.req.fd = disk.fd;
        this.#nextPiece(r);
        return this.#submit(vq, r);
      }
      default:
        this.requestCounts.unsupported++;
        return this.#finish(vq, ctx, r, VIRTIO_BLK_S_UNSUPP, 1);
    }
  }

  /** Points r.req at the next piece of its DISCARD / WRITE_ZEROES ranges. */
  #nextPiece(r: BlockRequest): void {
    const g = r.ranges;
    r.req.op = "fallocate";
    r.req.offset = g.pieceOffset;
    r.req.len = g.pieceLength(discard.VIRTIO_BLK_DISCARD_PIECE);
    r.req.mode = g.pieceMode;
    r.expected = r.req.len;
  }

  #submit(vq: BlockVq | null, r: BlockRequest): void {
    r.inFlight = true;
    r.generation = this.#generation;
    this.#depth++;
    try {
      this.#aio.submit(r.req, r.done);
    } catch (e) {
      r.inFlight = false;
      if (!(e instanceof AioQueueFullError)) throw e;
      if (vq) {
        // Backend full: retry this chain when a request completes.
        vq.queue!.undoPop();
        vq.stalled = true;
      } else {
        // A later piece of a started request: it goes first when a slot frees.
        this.#waiting.push(r);
      }
    } finally {
      this.#depth--;
    }
    // Next pieces of requests that completed inline (SyncAio): a loop, not a
    // recursion as deep as the request has pieces.
    while (this.#depth === 0 && this.#inline.length > 0) this.#submit(null, this.#inline.shift()!);
  }

  /** The yield BH: continues the queue (not under the transport's guard). */
  #resume(vq: BlockVq): void {
    const ctx = this.#ctx;
    if (!ctx || ctx.broken) return;
    try {
      this.processQueue(vq.index);
    } catch (e) {
      ctx.markBroken(e instanceof Error ? e.message : String(e), e);
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
    const vq = this.#vqs[r.vq];
    if (!ctx || !vq.queue || ctx.broken) return;
    try {
      if (r.req.op === "fallocate" && this.#pieceDone(r, result)) {
        // More pieces: the next one goes out now, behind nothing else.
        this.#nextPiece(r);
        if (this.#depth > 0) this.#inline.push(r);
        else this.#submit(null, r);
      } else {
        const ok = result >= 0 && result === r.expected ||
          r.req.op === "fallocate" && r.ranges.done;
        this.#finish(vq, ctx, r, ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR, ok ? r.usedLen : 1);
      }
      this.#retry();
    } catch (e) {
      // This entry point is not under the transport's guard: contain it here.
      ctx.markBroken(e instanceof Error ? e.message : String(e), e);
    }
  }

  /**
   * Accounts one finished piece; true when the request has more to do. A
   * failed piece ends the request (ranges.done stays false: IOERR).
   */
  #pieceDone(r: BlockRequest, result: number): boolean {
    const g = r.ranges;
    // A file system without hole punching keeps the data: DISCARD is only a hint.
    const ok = result === r.expected ||
      (g.isDiscard && result < 0 && g.discardUnsupported(-result));
    return ok && g.advance(r.expected);
  }

  /** After a completion freed a backend slot: waiting pieces first, then the queue. */
  #retry(): void {
    if (this.#processing > 0) return;
    while (this.#waiting.length > 0) {
      const w = this.#waiting.shift()!;
      this.#submit(null, w);
      if (!w.inFlight) return;
    }
    for (const vq of this.#vqs) {
      if (!vq.stalled) continue;
      vq.stalled = false;
      this.processQueue(vq.index);
      if (vq.stalled) return; // full again: the next completion goes on
    }
  }

  /** Writes the status byte, then publishes the used entry. */
  #finish(vq: BlockVq, ctx: VirtioContext, r: BlockRequest, status: number, len: number): void {
    ctx.mem.writeU8(r.statusAddr, status);
    vq.queue!.pushUsed(r.head, len);
    if (vq.inProcess) vq.signalPending = true;
    else ctx.signalUsed(vq.index);
  }
}
