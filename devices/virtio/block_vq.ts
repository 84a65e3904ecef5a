/**
 * One virtio-blk request queue's state (VIRTIO_BLK_F_MQ gives a device
 * several): its descriptor chain buffer, one reusable request per head,
 * and the flags of its processing loop. Built once per queue; nothing here
 * allocates per request.
 *
 * @module
 */
import type { GuestMemory } from "../../memory/guest_memory.ts";
import type { Bh } from "../../mainloop/types.ts";
import { DescriptorChain, type SplitQueue } from "./queue.ts";
import { BlockRequest } from "./block_request.ts";

/**
 * A request queue of a virtio-blk device.
 *
 * @example
 * ```ts
 * import { BlockVq } from "./block_vq.ts";
 * const vq = new BlockVq(1, { size: 8, complete: () => {} });
 * console.log(vq.requests.length); // 8
 * ```
 */
export class BlockVq {
  /** Queue index. */
  readonly index: number;
  /** The chain being started (filled by `pop`). */
  readonly chain: DescriptorChain;
  /** One request per descriptor head. */
  requests: BlockRequest[] = [];
  /** The driver's ring, once activated (null: disabled or not yet). */
  queue: SplitQueue | null = null;
  /** Inside this queue's processing loop (completions then defer the interrupt). */
  inProcess = false;
  /** A used entry was pushed during the loop: interrupt when it ends. */
  signalPending = false;
  /** The backend was full: the queue waits for a completion. */
  stalled = false;
  /** Continues the queue after a batch (null: a kick drains it). */
  bh: Pick<Bh, "schedule"> | null = null;
  readonly #complete: (r: BlockRequest, result: number) => void;

  /**
   * @param index the queue index
   * @param options queue size and the completion callback of every request
   */
  constructor(
    index: number,
    options: { size: number; complete: (r: BlockRequest, result: number) => void },
  ) {
    this.index = index;
    this.#complete = options.complete;
    this.chain = new DescriptorChain(options.size);
    for (let i = 0; i < options.size; i++) this.requests.push(this.#newRequest());
  }

  #newRequest(): BlockRequest {
    const r = new BlockRequest(this.#complete);
    r.vq = this.index;
    return r;
  }

  /**
   * Device reset: the ring goes, and each request still in flight is
   * replaced by a fresh one (its completion will find it stale).
   *
   * @returns how many requests were in flight
   */
  reset(): number {
    this.queue = null;
    this.stalled = false;
    let stale = 0;
    this.requests = this.requests.map((r) => {
      if (!r.inFlight) return r;
      stale++;
      return this.#newRequest();
    });
    return stale;
  }

  /**
   * Fills r.req.iovec with `len` bytes of the current chain's segments from
   * `first`, skipping `skip` bytes (host addresses of guest RAM, each range
   * checked by GuestMemory). Writes numbers into the request's own iovec
   * array: nothing is allocated per segment.
   *
   * Positional arguments on purpose: this runs per request, and an options
   * object would be an allocation each time.
   *
   * @param mem guest RAM
   * @param r the request
   * @param first the segment to start at
   * @param skip bytes of it to skip
   * @param len bytes in all
   */
  buildIov(mem: GuestMemory, r: BlockRequest, first: number, skip: number, len: number): void {
    const c = this.chain;
    const iov = r.req.iovec;
    iov.reset();
    let left = len, off = skip;
    for (let i = first; i < c.count && left > 0; i++) {
      const l = c.len[i];
      if (off >= l) {
        off -= l;
        continue;
      }
      const n = Math.min(l - off, left);
      // The segment was checked into its region when popped.
      iov.push(mem.hostAddressIn(c.region[i], c.addr[i] + off, n), n);
      left -= n;
      off = 0;
    }
  }
}
