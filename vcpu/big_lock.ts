/**
 * The VM's big lock (QEMU's BQL): one Int32 in shared memory, taken around
 * every device access from any thread (vCPU Workers, the main loop), so
 * device state in shared memory changes under one owner at a time.
 *
 * A three-state futex mutex (0 free, 1 locked, 2 locked with waiters):
 * uncontended lock/unlock is one compare-exchange each.
 *
 * @module
 */

/**
 * A mutex over shared memory. Not re-entrant: a device must not call back
 * into the bus while holding it.
 *
 * @example
 * ```ts
 * import { BigLock } from "./big_lock.ts";
 * const lock = new BigLock(BigLock.create());
 * lock.lock();
 * lock.unlock();
 * ```
 */
export class BigLock {
  readonly #w: Int32Array<SharedArrayBuffer>;
  readonly #canWait: boolean;

  /** @param sab from {@link BigLock.create}, shared between threads */
  constructor(sab: SharedArrayBuffer) {
    this.#w = new Int32Array(sab, 0, 1);
    // The main thread of a browser-like host may not block; Deno's may.
    this.#canWait = true;
  }

  /** @returns a new lock's buffer */
  static create(): SharedArrayBuffer {
    return new SharedArrayBuffer(4);
  }

  /** The buffer, to post to Workers. */
  get buffer(): SharedArrayBuffer {
    return this.#w.buffer;
  }

  /** Takes the lock, waiting if another thread holds it. */
  lock(): void {
    const w = this.#w;
    let c = Atomics.compareExchange(w, 0, 0, 1);
    if (c === 0) return;
    for (let spin = 0; spin < 100 && c !== 0; spin++) {
      c = Atomics.compareExchange(w, 0, 0, 1);
    }
    if (c === 0) return;
    if (c !== 2) c = Atomics.exchange(w, 0, 2);
    while (c !== 0) {
      if (this.#canWait) Atomics.wait(w, 0, 2);
      c = Atomics.exchange(w, 0, 2);
    }
  }

  /**
   * Takes the lock if free.
   *
   * @returns whether it was taken
   */
  tryLock(): boolean {
    return Atomics.compareExchange(this.#w, 0, 0, 1) === 0;
  }

  /** Releases the lock. */
  unlock(): void {
    if (Atomics.sub(this.#w, 0, 1) !== 1) {
      Atomics.store(this.#w, 0, 0);
      Atomics.notify(this.#w, 0, 1);
    }
  }

  /**
   * Runs fn under the lock.
   *
   * @param fn the critical section
   * @returns fn's result
   */
  with<T>(fn: () => T): T {
    this.lock();
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }
}
