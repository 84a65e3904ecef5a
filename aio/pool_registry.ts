/**
 * One aio engine of each kind per event loop, shared by every disk served
 * on that loop, as QEMU keeps one thread pool and one io_uring per
 * AioContext: ten disks on the main loop share one pool of at most 64
 * threads (started on demand) instead of owning ten.
 *
 * @module
 */
import type { EventLoop } from "../mainloop/types.ts";
import { type AioBackendOptions, type AioKind, createAioBackend } from "./backend.ts";
import type { AioBackend } from "./types.ts";

interface Entry {
  backend: AioBackend;
  users: number;
}

/** Pool threads a loop's shared engine starts at its first request and keeps. */
export const DISK_WARM_THREADS = 2;

const shared = new WeakMap<EventLoop, Map<AioKind, Entry>>();

/** A reference to a loop's shared engine. */
export interface SharedAio {
  /** The engine (do not close it: release the reference). */
  readonly backend: AioBackend;
  /**
   * Drops this reference; the last one closes the engine (waiting for its
   * in-flight requests, so the loop must keep running).
   */
  release(): Promise<void>;
}

/**
 * Takes a reference to the loop's engine of `kind`, creating it on first use.
 * Call on the loop's thread.
 *
 * @param loop the loop completions run on
 * @param kind `threads` or `io_uring`
 * @param options used only when the engine is created
 * @returns the reference
 * @example
 * ```ts
 * import { MainLoop } from "../mainloop/main_loop.ts";
 * import { acquireAio } from "./pool_registry.ts";
 * const loop = new MainLoop();
 * const running = loop.run();
 * const a = acquireAio(loop, "threads");
 * const b = acquireAio(loop, "threads");
 * console.log(a.backend === b.backend); // true
 * await a.release();
 * await b.release(); // the last reference closes the pool
 * loop.stop();
 * await running;
 * loop.close();
 * ```
 */
export function acquireAio(
  loop: EventLoop,
  kind: AioKind,
  options: AioBackendOptions = {},
): SharedAio {
  let byKind = shared.get(loop);
  if (!byKind) {
    byKind = new Map();
    shared.set(loop, byKind);
  }
  let entry = byKind.get(kind);
  if (!entry) {
    // Disks keep two pool threads once they have worked (a guest's readahead
    // keeps one or two requests in flight; see _pool_growth.ts). Their
    // callbacks are the block device's, which start no promise reactions.
    const pool = { warmThreads: DISK_WARM_THREADS, syncCallbacks: true, ...options.pool };
    const ring = { syncCallbacks: true, ...options.ring };
    entry = { backend: createAioBackend(loop, kind, { ...options, pool, ring }), users: 0 };
    byKind.set(kind, entry);
  }
  entry.users++;
  const e = entry;
  const map = byKind;
  let released = false;
  return {
    backend: e.backend,
    release(): Promise<void> {
      if (released) return Promise.resolve();
      released = true;
      if (--e.users > 0) return Promise.resolve();
      if (map.get(kind) === e) map.delete(kind);
      return e.backend.close();
    },
  };
}
