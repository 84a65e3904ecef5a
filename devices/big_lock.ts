/**
 * The VM-wide big lock (QEMU's BQL), in shared memory.
 *
 * Every vCPU Worker loads the same device classes over the same buffer and
 * handles its own PIO/MMIO exits, and the main loop delivers asynchronous
 * input (stdin bytes); all of them take the big lock around device access,
 * so device code runs as if single-threaded.
 *
 * @module
 */

/** Plain, postMessage-able description of a BigLock's words. */
export interface BigLockState {
  /** The buffer holding the lock. */
  sab: SharedArrayBuffer;
  /** Byte offset of the lock's words (4-byte aligned). */
  offset: number;
}

/** Lock word values (Drepper's three-state futex mutex). */
const UNLOCKED = 0;
const LOCKED = 1;
const CONTENDED = 2;

/** Word indexes inside the lock's region. */
const W_STATE = 0;
const W_OWNER = 1;
const W_NEXT_TOKEN = 2;

/** Spins before sleeping in Atomics.wait: device sections are short. */
const SPIN_LIMIT = 100;

/**
 * The VM-wide big lock: a mutex of Atomics over three Int32 words in shared
 * memory, usable from the main thread and from Workers.
 *
 * Re-entrant: a thread that already holds it may lock it again (a depth
 * count), because a nested acquire of a plain mutex would hang the vCPU
 * forever, which is worse than the bug that caused it. QEMU's BQL is not
 * recursive; callers should still keep sections flat.
 *
 * Owner-aware: each BigLock object gets a token from a counter in shared
 * memory, and the owner's token is stored while held. Construct one BigLock
 * per thread (a BigLock object is not postMessage-able; pass its `state`).
 *
 * @example
 * ```ts
 * import { BigLock } from "./big_lock.ts";
 * const sab = new SharedArrayBuffer(BigLock.BYTES);
 * const lock = new BigLock({ sab, offset: 0 });
 * lock.lock();
 * try {
 *   // touch device registers
 * } finally {
 *   lock.unlock();
 * }
 * ```
 */
export class BigLock {
  /** Bytes a BigLock occupies in its buffer. */
  static readonly BYTES = 12;

  #words: Int32Array;
  #token: number;
  #depth = 0;
  #state: BigLockState;

  /**
   * Attaches to the lock words in shared memory.
   *
   * @param state the buffer and offset of the lock's words
   */
  constructor(state: BigLockState) {
    if (state.offset % 4 !== 0) throw new RangeError(`Lock offset ${state.offset} is not aligned`);
    if (state.offset < 0 || state.offset + BigLock.BYTES > state.sab.byteLength) {
      throw new RangeError(`Lock offset ${state.offset} is outside the shared buffer`);
    }
    this.#state = { sab: state.sab, offset: state.offset };
    this.#words = new Int32Array(state.sab, state.offset, 3);
    this.#token = Atomics.add(this.#words, W_NEXT_TOKEN, 1) + 1;
  }

  /** The plain state to send to another thread, which builds its own BigLock. */
  get state(): BigLockState {
    return this.#state;
  }

  /** Whether the calling thread (this object) holds the lock. */
  get held(): boolean {
    return this.#depth > 0;
  }

  /** Whether any thread holds the lock. */
  get locked(): boolean {
    return Atomics.load(this.#words, W_STATE) !== UNLOCKED;
  }

  /** Token of the holder, 0 when free (for diagnostics). */
  get owner(): number {
    return Atomics.load(this.#words, W_OWNER);
  }

  /** This object's token, as `owner` shows it while held. */
  get token(): number {
    return this.#token;
  }

  /** Acquires the lock, sleeping in Atomics.wait while another thread holds it. */
  lock(): void {
    if (this.#depth > 0) {
      this.#depth++;
      return;
    }
    const w = this.#words;
    let c = Atomics.compareExchange(w, W_STATE, UNLOCKED, LOCKED);
    if (c !== UNLOCKED) {
      for (let i = 0; i < SPIN_LIMIT && c !== UNLOCKED; i++) {
        c = Atomics.compareExchange(w, W_STATE, UNLOCKED, LOCKED);
      }
      if (c !== UNLOCKED) {
        if (c !== CONTENDED) c = Atomics.exchange(w, W_STATE, CONTENDED);
        while (c !== UNLOCKED) {
          Atomics.wait(w, W_STATE, CONTENDED);
          c = Atomics.exchange(w, W_STATE, CONTENDED);
        }
      }
    }
    Atomics.store(w, W_OWNER, this.#token);
    this.#depth = 1;
  }

  /**
   * Acquires the lock only if it is free (or already held by this thread).
   *
   * @returns whether the lock is now held
   */
  tryLock(): boolean {
    if (this.#depth > 0) {
      this.#depth++;
      return true;
    }
    if (Atomics.compareExchange(this.#words, W_STATE, UNLOCKED, LOCKED) !== UNLOCKED) return false;
    Atomics.store(this.#words, W_OWNER, this.#token);
    this.#depth = 1;
    return true;
  }

  /** Releases one level; the last release wakes one waiter. */
  unlock(): void {
    if (this.#depth === 0) throw new Error("Big lock released by a thread that does not hold it");
    if (--this.#depth > 0) return;
    const w = this.#words;
    Atomics.store(w, W_OWNER, 0);
    if (Atomics.sub(w, W_STATE, 1) !== LOCKED) {
      Atomics.store(w, W_STATE, UNLOCKED);
      Atomics.notify(w, W_STATE, 1);
    }
  }

  /**
   * Runs fn under the lock. Allocates a closure at most call sites: hot paths
   * call lock()/unlock() directly.
   *
   * @param fn the critical section
   * @returns what fn returns
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
