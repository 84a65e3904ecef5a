/**
 * The per-request state of virtio-blk: one object per descriptor head,
 * built once and reused, so starting and completing requests allocates
 * nothing.
 *
 * @module
 */
import type { AioRequest } from "../../aio/types.ts";
import { HostIovec } from "../../aio/iovec.ts";
import { DiscardRanges } from "./block_discard.ts";

/** Requests a {@link VirtioBlock} has started, by type (well-formed chains only). */
export interface BlockRequestCounts {
  /** VIRTIO_BLK_T_IN. */
  in: number;
  /** VIRTIO_BLK_T_OUT. */
  out: number;
  /** VIRTIO_BLK_T_FLUSH. */
  flush: number;
  /** VIRTIO_BLK_T_GET_ID. */
  getId: number;
  /** VIRTIO_BLK_T_DISCARD. */
  discard: number;
  /** VIRTIO_BLK_T_WRITE_ZEROES. */
  writeZeroes: number;
  /** Any other type (answered UNSUPP). */
  unsupported: number;
}

/**
 * One in-flight request, reused per descriptor head.
 *
 * @example
 * ```ts
 * import { BlockRequest } from "./block_request.ts";
 * const r = new BlockRequest((_r, result) => console.log(result));
 * r.done(512); // 512
 * ```
 */
export class BlockRequest {
  /** The request queue it came from (its heads are that queue's). */
  vq = 0;
  /** Head descriptor index (the used-ring id). */
  head = 0;
  /** Guest address of the status byte. */
  statusAddr = 0;
  /** used.len to report on success. */
  usedLen = 0;
  /** The result that means success for the aio request in flight. */
  expected = 0;
  /** Whether an aio request of this head is in flight. */
  inFlight = false;
  /** Device generation (bumped at each reset) this request belongs to. */
  generation = 0;
  /** DISCARD / WRITE_ZEROES: the ranges, worked through one piece at a time. */
  readonly ranges = new DiscardRanges();
  /**
   * The aio request, rewritten for each submission; reads and writes carry
   * the guest buffers as a reused iovec array (host addresses of guest RAM).
   */
  readonly req: AioRequest & { iovec: HostIovec; offset: number; len: number; mode: number };
  /** The aio callback (bound once). */
  readonly done: (result: number) => void;

  /** @param complete runs with this request and the aio result */
  constructor(complete: (r: BlockRequest, result: number) => void) {
    this.req = { op: "preadv", fd: -1, iovec: new HostIovec(), offset: 0, len: 0, mode: 0 };
    this.done = (result: number) => complete(this, result);
  }
}
