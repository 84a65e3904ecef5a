/**
 * The aio thread pools of this isolate, for statistics: each pool registers
 * itself when made and leaves when closed. (Pools inside iothread Workers
 * live in those isolates and are not listed here.)
 *
 * @module
 */

/** What statistics read from a pool. */
export interface AioPoolView {
  /** Live pool threads. */
  readonly threads: number;
  /** Threads waiting for work. */
  readonly idleThreads: number;
  /** Requests whose callback has not run yet. */
  readonly inFlight: number;
  /** Callbacks run over the pool's life. */
  readonly completed: number;
}

const pools = new Set<AioPoolView>();

/**
 * Lists a pool.
 *
 * @param pool the pool
 * @example
 * ```ts ignore
 * registerAioPool(this);
 * ```
 */
export function registerAioPool(pool: AioPoolView): void {
  pools.add(pool);
}

/**
 * Removes a pool from the list.
 *
 * @param pool the pool
 * @example
 * ```ts ignore
 * unregisterAioPool(this);
 * ```
 */
export function unregisterAioPool(pool: AioPoolView): void {
  pools.delete(pool);
}

/**
 * The live pools of this isolate.
 *
 * @returns the pools
 * @example
 * ```ts
 * import { aioPools } from "./pool_stats.ts";
 * console.log(aioPools().length >= 0);
 * ```
 */
export function aioPools(): AioPoolView[] {
  return [...pools];
}
