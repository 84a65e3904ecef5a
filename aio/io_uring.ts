/**
 * The io_uring backend (aio=io_uring): the same {@link AioBackend} interface
 * as the thread pool, driven from the loop's own thread with no worker
 * threads. io_uring_setup/io_uring_enter are raw syscalls through
 * sys/libc.ts; the SQ/CQ rings and SQE array are mmapped and accessed with
 * Atomics; completions signal an eventfd registered with the ring
 * (IORING_REGISTER_EVENTFD), which the loop polls like any fd, so callbacks
 * run in that fd handler on the loop's thread. Completions that happen
 * inside io_uring_enter itself (reads of cached data) do not wait for the
 * poll: a bottom half on the same thread reaps them in the next iteration.
 *
 * Each submit writes one SQE and calls io_uring_enter at once (no batching
 * BH: lowest latency at depth 1; the kernel may complete cached reads inline).
 * Once submitted a request belongs to the kernel: cancel returns false, as
 * QEMU's io_uring and linux-aio backends never cancel either.
 *
 * Where io_uring is missing (old kernel, `kernel.io_uring_disabled`,
 * seccomp), {@link IoUring.create} throws an Error saying so and naming
 * `aio=threads` as the alternative; {@link ioUringAvailable} probes first.
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { EAGAIN, EBUSY, EINTR, errno, ErrnoError } from "../sys/errno.ts";
import {
  closeFd,
  eventFd,
  eventFdDrain,
  hostBuffer,
  MAP_POPULATE,
  MAP_SHARED,
  mmap,
  munmap,
  PROT_READ,
  PROT_WRITE,
} from "../sys/fd.ts";
import type { Bh, EventLoop } from "../mainloop/types.ts";
import { bufferAddress, checkLen, type OneSegment, singleSegment } from "./request.ts";
import {
  AIO_FALLOC_ZERO_FALLBACK,
  type AioBackend,
  type AioCallback,
  AioQueueFullError,
  type AioRequest,
  IOV_MAX,
} from "./types.ts";
import type { HostIovec } from "./iovec.ts";
import { UringFallocate } from "./_uring_fallocate.ts";

const SYS_io_uring_setup = 425n;
const SYS_io_uring_enter = 426n;
const SYS_io_uring_register = 427n;
const IORING_OFF_SQ_RING = 0;
const IORING_OFF_CQ_RING = 0x8000000;
const IORING_OFF_SQES = 0x10000000;
const IORING_FEAT_SINGLE_MMAP = 1;
const IORING_REGISTER_EVENTFD = 4;
const IORING_UNREGISTER_EVENTFD = 5;
/** SQE opcodes (linux/io_uring.h). */
export const IORING_OP_READV = 1;
/** Vectored write. */
export const IORING_OP_WRITEV = 2;
/** fsync, or fdatasync with IORING_FSYNC_DATASYNC. */
export const IORING_OP_FSYNC = 3;
/** Read into one buffer. */
export const IORING_OP_READ = 22;
/** Write from one buffer. */
export const IORING_OP_WRITE = 23;
/** fallocate(2): off = offset, addr = length, len = mode. */
export const IORING_OP_FALLOCATE = 17;
const IORING_FSYNC_DATASYNC = 1;
const REAP_BATCH = 64;

// struct io_uring_params (120 bytes), offsets checked with a gcc probe.
const P_SQ_ENTRIES = 0, P_CQ_ENTRIES = 4, P_FEATURES = 20, P_SQ_OFF = 40, P_CQ_OFF = 80;
// io_sqring_offsets / io_cqring_offsets fields.
const O_HEAD = 0, O_TAIL = 4, O_MASK = 8, O_ARRAY = 24, O_CQES = 20;

function sys(nr: bigint, a = 0n, b = 0n, c = 0n, d = 0n, e = 0n): number {
  return Number(libc.syscall(nr, a, b, c, d, e, 0n));
}

/**
 * Whether io_uring can be set up here.
 *
 * @returns null if it can, else the reason
 * @example
 * ```ts
 * import { ioUringAvailable } from "./io_uring.ts";
 * console.log(ioUringAvailable() ?? "io_uring available");
 * ```
 */
export function ioUringAvailable(): string | null {
  const params = new Uint8Array(120);
  const fd = sys(SYS_io_uring_setup, 1n, BigInt(bufferAddress(params)));
  if (fd < 0) return new ErrnoError("io_uring_setup", errno()).message;
  closeFd(fd);
  return null;
}

/** Options for {@link IoUring.create}. */
export interface IoUringOptions {
  /** Submission queue entries, a power of two (default 256); also the in-flight limit. */
  entries?: number;
  /**
   * The requests' callbacks start no promise reactions (a disk's device
   * model): completions run in `sync` callbacks of the loop
   * (mainloop/types.ts `CallbackOptions`), which then allocates nothing for
   * them. Default false.
   */
  syncCallbacks?: boolean;
}

/** An io_uring instance bound to one event loop. */
export class IoUring implements AioBackend {
  readonly #one: OneSegment = { addr: 0n, len: 0, keep: null };
  /** Backend name. */
  readonly kind = "io_uring" as const;
  #loop: EventLoop;
  #fd: number;
  #efd: number;
  #reapBh: Bh;
  #maps: [bigint, number][] = [];
  #sqHead: Uint32Array;
  #sqTail: Uint32Array;
  #sqMask: number;
  #sqArray: Uint32Array;
  #sqe32: Uint32Array;
  #sqe64: BigUint64Array;
  #sqe8: Uint8Array;
  #cqHead: Uint32Array;
  #cqTail: Uint32Array;
  #cqMask: number;
  #cqe32: Int32Array;
  #entries: number;
  #free: number[] = [];
  #cbs: (AioCallback | null)[];
  #keep: (Uint8Array | HostIovec | null)[];
  #iovBufs: (BigUint64Array | null)[];
  #iovAddrs: bigint[];
  #gen: Uint32Array;
  #falloc: UringFallocate;
  #unsubmitted = 0;
  #inFlight = 0;
  #closed = false;
  #drained: (() => void) | null = null;

  private constructor(
    loop: EventLoop,
    fd: number,
    params: Uint8Array,
    entries: number,
    sync: boolean,
  ) {
    this.#loop = loop;
    this.#fd = fd;
    const pv = new DataView(params.buffer);
    const sqEntries = pv.getUint32(P_SQ_ENTRIES, true);
    const cqEntries = pv.getUint32(P_CQ_ENTRIES, true);
    const sqOff = (o: number) => pv.getUint32(P_SQ_OFF + o, true);
    const cqOff = (o: number) => pv.getUint32(P_CQ_OFF + o, true);
    const sqSize = sqOff(O_ARRAY) + sqEntries * 4;
    const cqSize = cqOff(O_CQES) + cqEntries * 16;
    const single = (pv.getUint32(P_FEATURES, true) & IORING_FEAT_SINGLE_MMAP) !== 0;
    const map = (len: number, offset: number) => {
      const addr = mmap(len, {
        prot: PROT_READ | PROT_WRITE,
        flags: MAP_SHARED | MAP_POPULATE,
        fd,
        offset,
      });
      this.#maps.push([addr, len]);
      return hostBuffer(addr, len);
    };
    const sq = map(single ? Math.max(sqSize, cqSize) : sqSize, IORING_OFF_SQ_RING);
    const cq = single ? sq : map(cqSize, IORING_OFF_CQ_RING);
    const sqes = map(sqEntries * 64, IORING_OFF_SQES);
    this.#sqHead = new Uint32Array(sq, sqOff(O_HEAD), 1);
    this.#sqTail = new Uint32Array(sq, sqOff(O_TAIL), 1);
    this.#sqMask = new Uint32Array(sq, sqOff(O_MASK), 1)[0];
    this.#sqArray = new Uint32Array(sq, sqOff(O_ARRAY), sqEntries);
    this.#sqe32 = new Uint32Array(sqes);
    this.#sqe64 = new BigUint64Array(sqes);
    this.#sqe8 = new Uint8Array(sqes);
    this.#cqHead = new Uint32Array(cq, cqOff(O_HEAD), 1);
    this.#cqTail = new Uint32Array(cq, cqOff(O_TAIL), 1);
    this.#cqMask = new Uint32Array(cq, cqOff(O_MASK), 1)[0];
    this.#cqe32 = new Int32Array(cq, cqOff(O_CQES), cqEntries * 4);
    this.#entries = Math.min(entries, sqEntries, cqEntries);
    this.#cbs = new Array(this.#entries).fill(null);
    this.#keep = new Array(this.#entries).fill(null);
    this.#iovBufs = new Array(this.#entries).fill(null);
    this.#iovAddrs = new Array(this.#entries).fill(0n);
    this.#gen = new Uint32Array(this.#entries);
    this.#falloc = new UringFallocate(this.#entries);
    for (let i = this.#entries - 1; i >= 0; i--) this.#free.push(i);
    this.#efd = eventFd();
    const efdBuf = new Int32Array([this.#efd]);
    const r = sys(
      SYS_io_uring_register,
      BigInt(fd),
      BigInt(IORING_REGISTER_EVENTFD),
      bufferAddress(new Uint8Array(efdBuf.buffer)),
      1n,
    );
    if (r < 0) throw new ErrnoError("IORING_REGISTER_EVENTFD", errno());
    // Completions that happen inside io_uring_enter (cached reads, errors)
    // are reaped by a BH on this thread right after it, not after a poll.
    // (IORING_REGISTER_EVENTFD_ASYNC would also spare their eventfd signal,
    // but completions posted from task_work in this thread then went
    // unsignalled and the ring hung.)
    this.#reapBh = loop.bh(() => this.#reap(false), "io_uring-reap", { sync });
    loop.setFdHandler(this.#efd, { read: () => this.#reap(true), sync });
  }

  /**
   * Sets up a ring on the loop's thread.
   *
   * @param loop the loop whose thread submits and receives completions
   * @param options ring size
   * @returns the backend
   * @example
   * ```ts ignore
   * import { IoUring } from "./io_uring.ts";
   * const ring = IoUring.create(loop, { entries: 128 });
   * ```
   */
  static create(loop: EventLoop, options: IoUringOptions = {}): IoUring {
    const entries = options.entries ?? 256;
    if (!Number.isInteger(entries) || entries < 1 || entries > 32768 || (entries & (entries - 1))) {
      throw new RangeError(`io_uring entries must be a power of two up to 32768, got ${entries}`);
    }
    const params = new Uint8Array(120);
    const fd = sys(SYS_io_uring_setup, BigInt(entries), bufferAddress(params));
    if (fd < 0) {
      const e = new ErrnoError("io_uring_setup", errno());
      throw new Error(`io_uring is unavailable (${e.message}); use aio=threads`, { cause: e });
    }
    try {
      return new IoUring(loop, fd, params, entries, options.syncCallbacks === true);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
  }

  /** Requests whose callback has not run yet. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Queues a request and submits it to the kernel.
   *
   * @param req operation, fd, offset, memory
   * @param cb runs once on the loop with bytes or -errno
   * @returns a handle (cancel always declines it, see module docs)
   */
  submit(req: AioRequest, cb: AioCallback): number {
    if (this.#closed) throw new Error("io_uring is closed");
    const fd = req.fd, offset = req.offset ?? 0;
    if (!Number.isInteger(fd)) throw new RangeError(`Invalid fd ${fd}`);
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new RangeError(`Invalid offset ${offset}`);
    }
    let opcode: number, addr = 0n, len = 0, flags = 0;
    let keep: Uint8Array | HostIovec | null = null;
    const slot = this.#free.length > 0 ? this.#free[this.#free.length - 1] : -1;
    switch (req.op) {
      case "pread":
      case "pwrite":
        opcode = req.op === "pread" ? IORING_OP_READ : IORING_OP_WRITE;
        singleSegment(req, this.#one);
        ({ addr, len, keep } = this.#one);
        if (len > 0x7fff_f000) throw new RangeError(`Transfer too large: ${len}`);
        break;
      case "preadv":
      case "pwritev": {
        opcode = req.op === "preadv" ? IORING_OP_READV : IORING_OP_WRITEV;
        if (req.iovec) {
          // The caller's own iovec array: no copy, nothing per segment.
          len = req.iovec.count;
          if (len < 1 || len > IOV_MAX) throw new RangeError(`Invalid iov count ${len}`);
          addr = req.iovec.address;
          keep = req.iovec;
          break;
        }
        const n = req.iov ? req.iov.length : req.buf ? 1 : 0;
        if (n < 1 || n > IOV_MAX) throw new RangeError(`Invalid iov count ${n}`);
        if (slot < 0) break;
        const iovs = this.#iovs(slot, n);
        if (req.iov) {
          for (let i = 0; i < n; i++) {
            iovs[2 * i] = req.iov[i].addr;
            iovs[2 * i + 1] = BigInt(checkLen(req.iov[i].len));
          }
        } else {
          iovs[0] = bufferAddress(req.buf!);
          iovs[1] = BigInt(req.buf!.byteLength);
          keep = req.buf!;
        }
        addr = this.#iovAddrs[slot];
        len = n;
        break;
      }
      case "fsync":
      case "fdatasync":
        opcode = IORING_OP_FSYNC;
        flags = req.op === "fdatasync" ? IORING_FSYNC_DATASYNC : 0;
        break;
      case "fallocate": {
        opcode = IORING_OP_FALLOCATE;
        const mode = req.mode ?? 0;
        if (!Number.isInteger(mode) || mode < 0 || mode > 0x7fff_ffff) {
          throw new RangeError(`Invalid fallocate mode ${mode}`);
        }
        const bytes = checkLen(req.len ?? 0);
        addr = BigInt(bytes);
        len = mode & ~AIO_FALLOC_ZERO_FALLBACK;
        if (slot < 0) break;
        this.#falloc.begin(slot, fd, offset, bytes, (mode & AIO_FALLOC_ZERO_FALLBACK) !== 0);
        break;
      }
      default:
        throw new RangeError(`Unknown aio operation ${req.op}`);
    }
    if (slot < 0) throw new AioQueueFullError("io_uring queue is full (EAGAIN)");
    this.#free.pop();
    this.#cbs[slot] = cb;
    this.#keep[slot] = keep;
    this.#inFlight++;
    this.#push(opcode, fd, offset, addr, len, flags, slot);
    return this.#gen[slot] * this.#entries + slot;
  }

  /** Writes one SQE for `slot` and submits it. */
  #push(
    opcode: number,
    fd: number,
    offset: number,
    addr: bigint,
    len: number,
    flags: number,
    slot: number,
  ): void {
    const tail = this.#sqTail[0];
    const i = tail & this.#sqMask;
    const w = i * 16;
    this.#sqe32.fill(0, w, w + 16);
    this.#sqe8[i * 64] = opcode;
    this.#sqe32[w + 1] = fd;
    this.#sqe64[i * 8 + 1] = BigInt(offset);
    this.#sqe64[i * 8 + 2] = addr;
    this.#sqe32[w + 6] = len;
    this.#sqe32[w + 7] = flags;
    this.#sqe32[w + 8] = slot; // user_data low word; high word 0
    this.#sqArray[i] = i;
    Atomics.store(this.#sqTail, 0, tail + 1);
    this.#unsubmitted++;
    this.#enter();
    // Completions posted inside io_uring_enter are reaped by a BH.
    this.#reapInline();
  }

  /**
   * Declines: a submitted request is the kernel's.
   *
   * @param _handle from submit
   * @returns false
   */
  cancel(_handle: number): boolean {
    return false;
  }

  /**
   * Waits for in-flight requests, then tears the ring down.
   *
   * @returns resolves when closed
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#inFlight > 0) await new Promise<void>((r) => (this.#drained = r));
    this.#loop.setFdHandler(this.#efd, null);
    this.#reapBh.delete();
    sys(SYS_io_uring_register, BigInt(this.#fd), BigInt(IORING_UNREGISTER_EVENTFD), 0n, 0n);
    for (const [addr, len] of this.#maps) munmap(addr, len);
    this.#maps = [];
    closeFd(this.#fd);
    closeFd(this.#efd);
  }

  #iovs(slot: number, n: number): BigUint64Array {
    let iovs = this.#iovBufs[slot];
    if (!iovs || iovs.length < n * 2) {
      iovs = new BigUint64Array(Math.max(16, n * 2));
      this.#iovBufs[slot] = iovs;
      this.#iovAddrs[slot] = bufferAddress(new Uint8Array(iovs.buffer));
    }
    return iovs;
  }

  #enter(): void {
    while (this.#unsubmitted > 0) {
      const r = sys(SYS_io_uring_enter, BigInt(this.#fd), BigInt(this.#unsubmitted), 0n, 0n, 0n);
      if (r >= 0) {
        this.#unsubmitted -= r;
        if (r === 0) return;
        continue;
      }
      const e = errno();
      if (e === EINTR) continue;
      // Out of kernel resources: the SQEs stay queued; retried on the next completion.
      if (e === EAGAIN || e === EBUSY) return;
      throw new ErrnoError("io_uring_enter", e);
    }
  }

  /** Completions already in the CQ (from inside io_uring_enter) run from a BH. */
  #reapInline(): void {
    if (this.#cqHead[0] !== Atomics.load(this.#cqTail, 0)) this.#reapBh.schedule();
  }

  #reap(fromEventFd: boolean): void {
    if (fromEventFd) eventFdDrain(this.#efd);
    let head = this.#cqHead[0];
    // Reads of cached data complete inline in io_uring_enter, so callbacks
    // that resubmit keep the CQ non-empty: reap at most REAP_BATCH here and
    // leave the rest (the eventfd is signalled again) to the next iteration,
    // so the loop cannot starve.
    let tail = Atomics.load(this.#cqTail, 0);
    for (let budget = REAP_BATCH; budget > 0; budget--) {
      if (head === tail) {
        tail = Atomics.load(this.#cqTail, 0);
        if (head === tail) break;
      }
      const c = (head & this.#cqMask) * 4;
      const slot = this.#cqe32[c];
      let res = this.#cqe32[c + 2];
      head = (head + 1) >>> 0;
      Atomics.store(this.#cqHead, 0, head);
      const cb = this.#cbs[slot];
      if (slot < 0 || slot >= this.#entries || !cb) continue;
      const r = this.#falloc.complete(slot, res);
      if (r === null) {
        // The zero fallback's next step, in the same slot.
        const n = this.#falloc.next;
        this.#push(n.opcode, n.fd, n.offset, n.addr, n.len, 0, slot);
        continue;
      }
      res = r;
      this.#cbs[slot] = null;
      this.#keep[slot] = null;
      this.#gen[slot] = (this.#gen[slot] + 1) % 0x100000;
      this.#free.push(slot);
      this.#inFlight--;
      try {
        cb(res);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
    // Left over CQEs (the batch ran out): the next iteration reaps them.
    if (this.#unsubmitted > 0) this.#enter();
    this.#reapInline();
    if (this.#inFlight === 0 && this.#drained) {
      const d = this.#drained;
      this.#drained = null;
      d();
    }
  }
}
