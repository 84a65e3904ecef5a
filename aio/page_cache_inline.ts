/**
 * A disk's requests that the host's page cache can serve at once run inline
 * on the loop that owns the disk, instead of through its aio engine: no
 * hand-off to a pool thread and none back. Those two thread wake-ups, not
 * the copy, set the time of a cached read (a 1 MiB guest read of 254 pages:
 * ~120 µs inline against ~180-370 µs through the pool natively, far more
 * under the nested host's emulator; `bench/virtio_blk_bench.ts`). io_uring
 * does the same inside the kernel for buffered I/O, trying the copy without
 * blocking first; `preadv2(RWF_NOWAIT)` gives a thread pool that way.
 *
 * What runs inline depends on where the image lives, found once per disk:
 * - A file system with RWF_NOWAIT (ext4, xfs, btrfs, block devices): reads
 *   try `preadv2(RWF_NOWAIT)`, which copies what is cached and returns
 *   EAGAIN or a short count instead of waiting for the device; a read it
 *   does not finish goes to the engine whole (reading twice is harmless).
 *   Writes try `pwritev2(RWF_NOWAIT)` where the kernel offers it.
 *   EOPNOTSUPP turns the try off for the rest of the disk's life.
 * - A memory file system (tmpfs, ramfs; Linux gives them no RWF_NOWAIT):
 *   the file is RAM, so reads, writes and flushes are memory copies and run
 *   inline. Its pages can be swapped out as guest RAM's can, and the loop
 *   already takes such a fault whenever it reads a ring.
 * - O_DIRECT (`cache=none`): everything goes to the engine.
 *
 * A request over {@link INLINE_MAX_BYTES} always goes to the engine, and so
 * does everything past {@link INLINE_BUDGET_BYTES} copied inline in one turn
 * of the loop (a bottom half refills the budget in the next), so a guest
 * that queues many large requests holds its loop for a bounded time and the
 * rest waits in the pool, not behind it. Nothing here allocates per request.
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { EOPNOTSUPP, errno } from "../sys/errno.ts";
import { O_DIRECT } from "../sys/fd.ts";
import type { AioCallback, AioRequest } from "./types.ts";
import type { Bh } from "../mainloop/types.ts";

/** The engine a disk's requests go to when they do not run inline. */
export interface InlineEngine {
  /** As AioBackend.submit. */
  submit(req: AioRequest, cb: AioCallback): number;
}

/** The largest request that runs inline (bytes): a few hundred µs of copy at most. */
export const INLINE_MAX_BYTES = 4 << 20;

/**
 * Bytes copied inline per turn of the loop, at most (a few ms natively);
 * past it, requests go to the engine until the next turn. A kick handles at
 * most 64 requests before it yields (VirtioBlock), and Linux sends at most
 * 1.25 MiB a request, so a guest's ordinary burst stays inside: at 16 MiB a
 * nested guest's writeback burst (18 requests of 910 KiB) spilled into the
 * pool, whose threads then started in the middle of it (seconds of CPU
 * under the nested host's emulator).
 */
export const INLINE_BUDGET_BYTES = 64 << 20;

/** preadv2/pwritev2 flag: return EAGAIN rather than wait (linux/fs.h). */
export const RWF_NOWAIT = 0x08;
/** statfs f_type of tmpfs (linux/magic.h). */
export const TMPFS_MAGIC = 0x0102_1994;
/** statfs f_type of ramfs (linux/magic.h), as the low 32 bits. */
export const RAMFS_MAGIC = 0x8584_58f6;
/** fcntl command: the open flags. */
export const F_GETFL = 3;
/** Bytes of `struct statfs` on x86-64 (f_type is its first field, a long). */
export const STATFS_BYTES = 120;

/**
 * preadv2/pwritev2 as this module calls them: the offset as a number, which
 * Deno passes to an `i64` as is (its types say bigint only), so a request
 * makes no BigInt.
 */
type RwV2 = (fd: number, iov: bigint, count: number, offset: number, flags: number) => number;

/** How one kind of request is tried inline. */
export type InlineMode =
  /** Always inline (a memory file system). */
  | "memory"
  /** Inline when the page cache has it (RWF_NOWAIT). */
  | "nowait"
  /** Never. */
  | "off";

/** Where an image's file lives, for {@link PageCacheInline}. */
export interface InlinePlan {
  /** Reads. */
  reads: InlineMode;
  /** Writes (and, for `memory`, flushes). */
  writes: InlineMode;
}

/**
 * How requests on `fd` may run inline: by its open flags and its file
 * system's type.
 *
 * @param fd an open image
 * @returns the plan
 * @example
 * ```ts
 * import { inlinePlanOf } from "./page_cache_inline.ts";
 * console.log(inlinePlanOf(-1)); // { reads: "off", writes: "off" }
 * ```
 */
export function inlinePlanOf(fd: number): InlinePlan {
  const flags = fd < 0 ? -1 : libc.fcntl(fd, F_GETFL, 0n);
  if (flags < 0 || (flags & O_DIRECT) !== 0) return { reads: "off", writes: "off" };
  const st = new Uint32Array(STATFS_BYTES / 4);
  if (libc.fstatfs(fd, new Uint8Array(st.buffer)) !== 0) return { reads: "off", writes: "off" };
  if (st[0] === TMPFS_MAGIC || st[0] === RAMFS_MAGIC) return { reads: "memory", writes: "memory" };
  return { reads: "nowait", writes: "nowait" };
}

/**
 * A disk's {@link InlineEngine} that serves what it can inline and hands the
 * rest to the engine below it. The callback of an inline request runs
 * before `submit` returns (as with `SyncAio`; VirtioBlock handles both).
 *
 * @example
 * ```ts ignore
 * const aio = new PageCacheInline(pool, disk.fd);
 * new VirtioBlock({ disk, aio });
 * ```
 */
export class PageCacheInline implements InlineEngine {
  readonly #engine: InlineEngine;
  #reads: InlineMode;
  #writes: InlineMode;
  /** Bytes that may still be copied inline in this turn of the loop. */
  #budget = INLINE_BUDGET_BYTES;
  /** Refills the budget in the loop's next turn (null: no budget, for tests). */
  readonly #refill: Pick<Bh, "schedule" | "delete"> | null;
  /** Requests completed inline. */
  inline = 0;
  /** Requests tried inline and then handed to the engine (not all cached). */
  missed = 0;

  /**
   * @param engine where requests go that do not run inline
   * @param fd the image (its plan is found now)
   * @param options `loop`: the loop the requests arrive on, whose turns
   * bound the inline copies ({@link INLINE_BUDGET_BYTES}; without one, no
   * bound); `plan` overrides {@link inlinePlanOf}
   */
  constructor(
    engine: InlineEngine,
    fd: number,
    options: {
      loop?: { bh(cb: () => void, name?: string): Pick<Bh, "schedule" | "delete"> };
      plan?: InlinePlan;
    } = {},
  ) {
    const plan = options.plan ?? inlinePlanOf(fd);
    this.#engine = engine;
    this.#reads = plan.reads;
    this.#writes = plan.writes;
    this.#refill = options.loop?.bh(() => (this.#budget = INLINE_BUDGET_BYTES), "inline-budget") ??
      null;
  }

  /** Deletes the budget's bottom half (the engine is the caller's to close). */
  close(): void {
    this.#refill?.delete();
  }

  /** The plan now (modes turn off when the kernel refuses RWF_NOWAIT). */
  get plan(): InlinePlan {
    return { reads: this.#reads, writes: this.#writes };
  }

  /**
   * Runs the request inline if it can, else submits it to the engine.
   *
   * @param req the request
   * @param cb gets bytes or -errno
   * @returns the engine's handle, or 0 for a request done inline
   */
  submit(req: AioRequest, cb: AioCallback): number {
    const op = req.op;
    if (op === "preadv" || op === "pwritev") {
      const mode = op === "preadv" ? this.#reads : this.#writes;
      const v = req.iovec;
      if (
        mode !== "off" && v !== undefined && v.count > 0 && v.bytes <= INLINE_MAX_BYTES &&
        (this.#refill === null || this.#spend(v.bytes))
      ) {
        const flags = mode === "nowait" ? RWF_NOWAIT : 0;
        const offset = req.offset ?? 0;
        const n = op === "preadv"
          ? (libc.preadv2_i32 as unknown as RwV2)(req.fd, v.address, v.count, offset, flags)
          : (libc.pwritev2_i32 as unknown as RwV2)(req.fd, v.address, v.count, offset, flags);
        if (n === v.bytes) {
          this.inline++;
          cb(n);
          return 0;
        }
        if (n < 0 && mode === "nowait" && errno() === EOPNOTSUPP) {
          // This file system has no RWF_NOWAIT for this kind of request.
          if (op === "preadv") this.#reads = "off";
          else this.#writes = "off";
        } else {
          // Not all cached (EAGAIN, a short count), or an error the engine
          // meets again and reports.
          this.missed++;
        }
      }
    } else if ((op === "fdatasync" || op === "fsync") && this.#writes === "memory") {
      const r = op === "fdatasync" ? libc.fdatasync(req.fd) : libc.fsync(req.fd);
      if (r === 0) {
        this.inline++;
        cb(0);
        return 0;
      }
    }
    return this.#engine.submit(req, cb);
  }

  /** Takes `bytes` from this turn's budget; false when it is spent. */
  #spend(bytes: number): boolean {
    if (bytes > this.#budget) return false;
    if (this.#budget === INLINE_BUDGET_BYTES) this.#refill!.schedule();
    this.#budget -= bytes;
    return true;
  }
}
