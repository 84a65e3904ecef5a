/**
 * How the aio thread pool writes a request's memory into its shared slot:
 * lengths and fallocate modes, one address for pread/pwrite, an iovec array
 * for preadv/pwritev (a reused per-slot copy of `iov`, or the caller's own
 * {@link HostIovec} as it is), and the JS memory each request needs kept
 * alive until it completes.
 *
 * @module
 */
import {
  OP_FALLOCATE,
  OP_FDATASYNC,
  OP_FSYNC,
  OP_PREAD,
  OP_PWRITE,
  type PoolShared,
  SLOT_BYTES,
} from "./_layout.ts";
import type { AioRequest } from "./types.ts";
import { IOV_MAX } from "./types.ts";
import type { HostIovec } from "./iovec.ts";
import { bufferAddress, checkLen, type OneSegment, singleSegment } from "./request.ts";

/**
 * The slot side of a pool's submissions. Used on the pool's loop thread.
 *
 * @example
 * ```ts ignore
 * const slots = new SlotFiller(shared, 4096);
 * slots.fill(idx, OP_PREAD, { op: "pread", fd, buf });
 * slots.release(idx); // after its completion
 * ```
 */
export class SlotFiller {
  readonly #one: OneSegment = { addr: 0n, len: 0, keep: null };
  readonly #si: Int32Array<SharedArrayBuffer>;
  readonly #addrs: BigUint64Array<SharedArrayBuffer>;
  readonly #lens: Float64Array<SharedArrayBuffer>;
  /** Memory each in-flight request uses, kept alive until its completion. */
  readonly #keep: (Uint8Array | HostIovec | null)[];
  readonly #iovBufs: (BigUint64Array | null)[];
  readonly #iovAddrs: bigint[];

  /**
   * @param shared the pool's shared arrays
   * @param size its slot count
   */
  constructor(shared: PoolShared, size: number) {
    this.#si = new Int32Array(shared.slots);
    this.#addrs = new BigUint64Array(shared.addrs);
    this.#lens = new Float64Array(shared.lens);
    this.#keep = new Array(size).fill(null);
    this.#iovBufs = new Array(size).fill(null);
    this.#iovAddrs = new Array(size).fill(0n);
  }

  /**
   * Writes a request's operation arguments into slot `idx` (op and fd are
   * the pool's). Throws RangeError for a malformed request.
   *
   * @param idx the slot
   * @param op its op code
   * @param req the request
   */
  fill(idx: number, op: number, req: AioRequest): void {
    const W = SLOT_BYTES / 4;
    this.#keep[idx] = null;
    if (op === OP_FSYNC || op === OP_FDATASYNC) {
      this.#si[idx * W + 3] = 0;
      return;
    }
    if (op === OP_FALLOCATE) {
      const mode = req.mode ?? 0;
      if (!Number.isInteger(mode) || mode < 0 || mode > 0x7fff_ffff) {
        throw new RangeError(`Invalid fallocate mode ${mode}`);
      }
      this.#lens[idx] = checkLen(req.len ?? 0);
      this.#si[idx * W + 3] = mode;
      return;
    }
    if (op === OP_PREAD || op === OP_PWRITE) {
      const one = this.#one;
      singleSegment(req, one);
      this.#addrs[idx] = one.addr;
      this.#lens[idx] = one.len;
      this.#keep[idx] = one.keep;
      this.#si[idx * W + 3] = 1;
      return;
    }
    if (req.iovec) {
      // The caller's own iovec array: no copy, nothing per segment.
      const v = req.iovec;
      if (v.count < 1 || v.count > IOV_MAX) throw new RangeError(`Invalid iov count ${v.count}`);
      this.#addrs[idx] = v.address;
      this.#keep[idx] = v;
      this.#si[idx * W + 3] = v.count;
      return;
    }
    let cnt: number;
    let iovs = this.#iovBufs[idx];
    if (req.iov) {
      cnt = req.iov.length;
      if (cnt < 1 || cnt > IOV_MAX) throw new RangeError(`Invalid iov count ${cnt}`);
      if (!iovs || iovs.length < cnt * 2) iovs = this.#newIovs(idx, cnt);
      for (let i = 0; i < cnt; i++) {
        iovs[2 * i] = req.iov[i].addr;
        iovs[2 * i + 1] = BigInt(checkLen(req.iov[i].len));
      }
    } else if (req.buf) {
      cnt = 1;
      if (!iovs) iovs = this.#newIovs(idx, 1);
      iovs[0] = bufferAddress(req.buf);
      iovs[1] = BigInt(req.buf.byteLength);
      this.#keep[idx] = req.buf;
    } else {
      throw new RangeError(`${req.op} needs iov or buf`);
    }
    this.#addrs[idx] = this.#iovAddrs[idx];
    this.#si[idx * W + 3] = cnt;
  }

  #newIovs(idx: number, cnt: number): BigUint64Array {
    const iovs = new BigUint64Array(Math.max(16, cnt * 2));
    this.#iovBufs[idx] = iovs;
    this.#iovAddrs[idx] = bufferAddress(new Uint8Array(iovs.buffer));
    return iovs;
  }

  /**
   * Lets slot `idx`'s memory go (its request completed).
   *
   * @param idx the slot
   */
  release(idx: number): void {
    this.#keep[idx] = null;
  }
}
