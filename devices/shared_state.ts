/**
 * Device state shared by every thread that runs device code: the VM-wide big
 * lock (QEMU's BQL) and a way to carve each device's registers out of one
 * SharedArrayBuffer.
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
 * import { BigLock } from "./shared_state.ts";
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

/** A device's slice of the shared buffer: plain and postMessage-able. */
export interface SharedRegion {
  /** The buffer. */
  sab: SharedArrayBuffer;
  /** First byte of the region. */
  offset: number;
  /** Bytes in the region. */
  length: number;
}

/**
 * Lays out regions in one SharedArrayBuffer: reserve each device's bytes,
 * then allocate the buffer once and hand each device its region.
 *
 * @example
 * ```ts
 * import { BigLock, SharedLayout } from "./shared_state.ts";
 * const layout = new SharedLayout();
 * const lockAt = layout.reserve(BigLock.BYTES, 4);
 * const uartAt = layout.reserve(64);
 * const sab = layout.allocate();
 * const lock = new BigLock({ sab, offset: lockAt });
 * const uart = { sab, offset: uartAt, length: 64 };
 * ```
 */
export class SharedLayout {
  #size = 0;

  /** Bytes reserved so far (the buffer size allocate() will use). */
  get size(): number {
    return this.#size;
  }

  /**
   * Reserves `length` bytes aligned to `align`.
   *
   * @param length bytes
   * @param align power-of-two alignment, default 8 (fits Float64Array views)
   * @returns the region's offset
   */
  reserve(length: number, align = 8): number {
    if (!Number.isInteger(length) || length <= 0) {
      throw new RangeError(`Invalid region length ${length}`);
    }
    if (!Number.isInteger(align) || align <= 0 || (align & (align - 1)) !== 0) {
      throw new RangeError(`Invalid region alignment ${align}`);
    }
    const offset = (this.#size + align - 1) & ~(align - 1);
    this.#size = offset + length;
    return offset;
  }

  /**
   * Allocates a zeroed buffer big enough for every reservation.
   *
   * @returns the shared buffer
   */
  allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(Math.max(8, (this.#size + 7) & ~7));
  }
}

/**
 * Validates a region against its buffer and the size a device needs.
 *
 * @param region the region handed to a device
 * @param minLength bytes the device needs
 * @returns the region, unchanged
 * @example
 * ```ts
 * import { checkRegion } from "./shared_state.ts";
 * const sab = new SharedArrayBuffer(64);
 * checkRegion({ sab, offset: 0, length: 64 }, 32);
 * ```
 */
export function checkRegion(region: SharedRegion, minLength: number): SharedRegion {
  const { sab, offset, length } = region;
  if (!(sab instanceof SharedArrayBuffer)) throw new TypeError("Region is not a SharedArrayBuffer");
  if (!Number.isInteger(offset) || offset < 0 || offset % 8 !== 0) {
    throw new RangeError(`Region offset ${offset} is not 8-byte aligned`);
  }
  if (length < minLength) throw new RangeError(`Region of ${length} bytes is under ${minLength}`);
  if (offset + length > sab.byteLength) {
    throw new RangeError(`Region ${offset}+${length} is outside the shared buffer`);
  }
  return region;
}
