/**
 * Picks an aio engine by name, as a disk's `aio=threads|io_uring` option does.
 *
 * @module
 */
import type { EventLoop } from "../mainloop/types.ts";
import { IoUring, type IoUringOptions } from "./io_uring.ts";
import { ThreadPool, type ThreadPoolOptions } from "./thread_pool.ts";
import type { AioBackend } from "./types.ts";

/** Engine names accepted by {@link createAioBackend}. */
export type AioKind = "threads" | "io_uring";

/** Options for {@link createAioBackend}. */
export interface AioBackendOptions {
  /** Limits for `threads`. */
  pool?: ThreadPoolOptions;
  /** Ring size for `io_uring`. */
  ring?: IoUringOptions;
}

/**
 * Creates the named engine on the loop's thread. For `io_uring` where the
 * kernel refuses it, throws an Error that says so and suggests aio=threads.
 *
 * @param loop the loop completions run on
 * @param kind `threads` or `io_uring`
 * @param options per-engine options
 * @returns the engine
 * @example
 * ```ts
 * import { MainLoop } from "../mainloop/main_loop.ts";
 * import { createAioBackend } from "./backend.ts";
 * const loop = new MainLoop();
 * const running = loop.run();
 * const aio = createAioBackend(loop, "threads");
 * await aio.close();
 * loop.stop();
 * await running;
 * loop.close();
 * ```
 */
export function createAioBackend(
  loop: EventLoop,
  kind: AioKind,
  options: AioBackendOptions = {},
): AioBackend {
  switch (kind) {
    case "threads":
      return new ThreadPool(loop, options.pool);
    case "io_uring":
      return IoUring.create(loop, options.ring);
    default:
      throw new RangeError(`Unknown aio engine ${kind}: use threads or io_uring`);
  }
}
