/**
 * virtio-rng (virtio spec 5.4): one queue of device-writable buffers, each
 * filled from getrandom(2) straight into guest RAM. An optional byte rate
 * limit (a token bucket refilled continuously) defers requests with a loop
 * timer instead of refusing them.
 *
 * @module
 */
import { libc } from "../../sys/libc.ts";
import { EINTR, errno, ErrnoError } from "../../sys/errno.ts";
import type { EventLoop, Timer } from "../../mainloop/types.ts";
import { featureBit, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from "./constants.ts";
import type { VirtioContext, VirtioDevice } from "./device.ts";
import { DescriptorChain, type SplitQueue, VirtqueueError } from "./queue.ts";

/** Virtio device id of an entropy source. */
export const VIRTIO_ID_RNG = 4;
/** Most bytes one request gets (bounds the work per chain). */
export const RNG_MAX_REQUEST = 64 * 1024;
/** Most requests served per loop turn. */
export const RNG_BATCH = 64;

/** Options for {@link VirtioRng}. */
export interface VirtioRngOptions {
  /** The loop that owns the queue (for the rate limit's timer). */
  loop: EventLoop;
  /** Bytes per second the guest may take; none when absent. */
  rateBytesPerSec?: number;
  /** Queue size (default 64). */
  queueSize?: number;
}

/**
 * The virtio-rng device model.
 *
 * @example
 * ```ts ignore
 * const rng = new VirtioRng({ loop, rateBytesPerSec: 1 << 20 });
 * const transport = new VirtioPciDevice(virtioPciSpecOf(rng));
 * ```
 */
export class VirtioRng implements VirtioDevice {
  /** VIRTIO_ID_RNG. */
  readonly deviceType = VIRTIO_ID_RNG;
  /** processQueue starts no promise reactions: kicks are registered `sync`. */
  readonly syncQueues = true;
  /** One request queue. */
  readonly numQueues = 1;
  /** Maximum queue size. */
  readonly queueMaxSize: number;
  /** Ring features only. */
  readonly deviceFeatures = featureBit(VIRTIO_RING_F_EVENT_IDX) |
    featureBit(VIRTIO_RING_F_INDIRECT_DESC);
  /** No device configuration. */
  readonly configSize = 0;
  /** PCI class: other (as QEMU shows virtio-rng). */
  readonly pciClass = 0xff0000;
  /** Bytes handed to the guest, and requests served. */
  readonly stats = { bytes: 0, requests: 0, deferred: 0 };
  readonly #loop: EventLoop;
  readonly #rate: number;
  readonly #chain: DescriptorChain;
  readonly #timer: Timer;
  #tokens: number;
  #need = 0;
  #lastRefill = 0;
  #ctx: VirtioContext | null = null;
  #queue: SplitQueue | null = null;

  /** @param options loop, rate limit, queue size */
  constructor(options: VirtioRngOptions) {
    const rate = options.rateBytesPerSec ?? 0;
    if (!Number.isSafeInteger(rate) || rate < 0) {
      throw new RangeError(`Invalid rng rate ${options.rateBytesPerSec}`);
    }
    this.#loop = options.loop;
    this.#rate = rate;
    this.#tokens = rate;
    this.queueMaxSize = options.queueSize ?? 64;
    this.#chain = new DescriptorChain(this.queueMaxSize);
    this.#timer = options.loop.timer("monotonic", () => this.processQueue(0), { sync: true });
  }

  /** @param _config nothing to fill */
  initConfig(_config: Uint8Array): void {}

  /** @param ctx queues and signalling */
  activate(ctx: VirtioContext): void {
    this.#ctx = ctx;
    this.#queue = ctx.queues[0] ?? null;
    this.#lastRefill = this.#loop.now("monotonic");
  }

  /** @param drained called at once: getrandom never outlives a call */
  reset(drained: () => void): void {
    this.#ctx = null;
    this.#queue = null;
    this.#timer.del();
    drained();
  }

  /** @param index queue index (only 0 exists) */
  processQueue(index: number): void {
    const q = this.#queue;
    const ctx = this.#ctx;
    if (index !== 0 || !q || !ctx || ctx.broken) return;
    let served = 0;
    try {
      for (;;) {
        q.disableNotification();
        while (served < RNG_BATCH && q.pop(this.#chain)) {
          if (!this.#serve(q, ctx)) {
            q.undoPop();
            this.#deferUntilTokens();
            return;
          }
          served++;
        }
        if (served >= RNG_BATCH) {
          this.#timer.mod(this.#loop.now("monotonic"));
          return;
        }
        if (!q.enableNotification()) return;
      }
    } catch (e) {
      ctx.markBroken(e instanceof Error ? e.message : String(e));
    } finally {
      if (served > 0 && !ctx.broken) ctx.signalUsed(0);
    }
  }

  /** Fills the popped chain; false when the rate limit has no tokens left. */
  #serve(q: SplitQueue, ctx: VirtioContext): boolean {
    const c = this.#chain;
    if (c.readableCount !== 0) {
      throw new VirtqueueError("virtio-rng: request buffer is device-readable");
    }
    let want = Math.min(c.writableBytes, RNG_MAX_REQUEST);
    if (this.#rate > 0) {
      // Whole requests (up to one second's worth) wait for their tokens.
      want = Math.min(want, this.#rate);
      this.#refill();
      if (this.#tokens < want) {
        this.#need = want;
        return false;
      }
      this.#tokens -= want;
    }
    let done = 0;
    for (let i = 0; i < c.count && done < want; i++) {
      const n = Math.min(c.len[i], want - done);
      fillRandom(ctx.mem.slice(c.addr[i], n));
      done += n;
    }
    q.pushUsed(c.head, done);
    this.stats.bytes += done;
    this.stats.requests++;
    return true;
  }

  #refill(): void {
    const now = this.#loop.now("monotonic");
    const dt = (now - this.#lastRefill) / 1e9;
    this.#lastRefill = now;
    // At most one second of burst.
    this.#tokens = Math.min(this.#rate, this.#tokens + dt * this.#rate);
  }

  #deferUntilTokens(): void {
    this.stats.deferred++;
    const ns = Math.ceil(((this.#need - this.#tokens) / this.#rate) * 1e9);
    this.#timer.mod(this.#loop.now("monotonic") + Math.max(ns, 1e6));
  }
}

/**
 * Fills `buf` from getrandom(2) (blocking only before the host pool is
 * initialised, which is long past once a VMM runs).
 *
 * @param buf destination (may alias guest RAM)
 * @example
 * ```ts
 * import { fillRandom } from "./rng.ts";
 * const b = new Uint8Array(16);
 * fillRandom(b);
 * ```
 */
export function fillRandom(buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    const part = off === 0 ? buf : buf.subarray(off);
    const n = Number(libc.getrandom(part, BigInt(part.length), 0));
    if (n < 0) {
      const e = errno();
      if (e === EINTR) continue;
      throw new ErrnoError("getrandom", e);
    }
    off += n;
  }
}

/**
 * Builds virtio-rng on the loop that owns its queue (the machine's
 * `{module, factory, args}` shape).
 *
 * @param args the optional byte rate limit
 * @param ctx the loop
 * @returns the device model
 * @example
 * ```ts ignore
 * { module: RNG_MODULE, factory: "virtioRngBackend", args: { rateBytesPerSec: 1 << 20 } }
 * ```
 */
export function virtioRngBackend(
  args: { rateBytesPerSec?: number },
  ctx: { loop: EventLoop },
): { device: VirtioRng } {
  return { device: new VirtioRng({ loop: ctx.loop, rateBytesPerSec: args.rateBytesPerSec }) };
}

/** This module's URL, for `{module, factory}` specs. */
export const RNG_MODULE: string = new URL(import.meta.url).href;
