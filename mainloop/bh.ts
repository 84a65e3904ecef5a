/**
 * Bottom halves: callbacks a loop runs once, soon, after anyone schedules
 * them (QEMU's util/async.c). A BH is a bit in shared memory, so scheduling
 * is idempotent until it runs and works from any thread or Worker: set the
 * bit, then notify the loop's eventfd unless a notification is already
 * pending. No postMessage is involved.
 *
 * Shared layout (Int32 words): [0] notified flag (see notifier.ts),
 * [1] summary (bit w = word 2+w may have bits), [2..34) pending bits for up to
 * 1024 BHs.
 *
 * @module
 */
import { notifyShared } from "./notifier.ts";
import type { Bh, BhHandle } from "./types.ts";

/** Most bottom halves one loop can hold. */
export const MAX_BHS = 1024;
const SUMMARY = 1;
const FIRST = 2;
/** Int32 words a loop's shared state needs. */
export const BH_WORDS = FIRST + MAX_BHS / 32;

/**
 * Schedules a bottom half from its handle; for threads other than the loop's.
 * Allocates nothing: keep one SharedBh per handle.
 */
export class SharedBh {
  #words: Int32Array<SharedArrayBuffer>;
  #fd: number;
  #word: number;
  #mask: number;
  #sumMask: number;

  /**
   * @param handle what {@link Bh.handle} returned, possibly posted from another thread
   * @example
   * ```ts ignore
   * import { SharedBh } from "./bh.ts";
   * self.onmessage = (e) => new SharedBh(e.data).schedule();
   * ```
   */
  constructor(handle: BhHandle) {
    if (!(handle.state instanceof SharedArrayBuffer) || handle.state.byteLength < BH_WORDS * 4) {
      throw new TypeError("Invalid bottom-half handle");
    }
    if (!Number.isInteger(handle.index) || handle.index < 0 || handle.index >= MAX_BHS) {
      throw new RangeError(`Invalid bottom-half index ${handle.index}`);
    }
    this.#words = new Int32Array(handle.state);
    this.#fd = handle.fd;
    this.#word = FIRST + (handle.index >> 5);
    this.#mask = 1 << (handle.index & 31);
    this.#sumMask = 1 << (handle.index >> 5);
  }

  /** Schedules the BH on its loop; safe from any thread, idempotent until it runs. */
  schedule(): void {
    if (markPending(this.#words, this.#word, this.#mask, this.#sumMask)) {
      // Wakes the loop from ppoll (on its own thread or on Deno's pool).
      notifyShared(this.#words, this.#fd);
    }
  }
}

function markPending(words: Int32Array, word: number, mask: number, sumMask: number): boolean {
  if ((Atomics.or(words, word, mask) & mask) !== 0) return false;
  Atomics.or(words, SUMMARY, sumMask);
  return true;
}

/**
 * A loop's bottom halves. Owned by the loop's thread; only the pending bits
 * are touched by other threads.
 */
export class BhTable {
  #words: Int32Array<SharedArrayBuffer>;
  #fd: number;
  #cbs: ((() => void) | null)[] = [];
  /** Per index: the callback starts no promise reactions (CallbackOptions.sync). */
  #sync: boolean[] = [];
  #free: number[] = [];
  /**
   * Set by {@link BhTable.run} when it ran a BH not created `sync`; the loop
   * clears it.
   */
  ranAsync = false;
  /** Set by the loop while it is blocked in poll; local schedules must then notify. */
  polling = false;

  /**
   * @param words the loop's shared state, {@link BH_WORDS} words
   * @param fd the loop's eventfd
   * @example
   * ```ts
   * import { BhTable, BH_WORDS } from "./bh.ts";
   * const t = new BhTable(new Int32Array(new SharedArrayBuffer(BH_WORDS * 4)), -1);
   * const bh = t.create(() => console.log("ran"));
   * bh.schedule();
   * t.run();
   * ```
   */
  constructor(words: Int32Array<SharedArrayBuffer>, fd: number) {
    if (words.length < BH_WORDS) throw new RangeError("Shared state too small for bottom halves");
    this.#words = words;
    this.#fd = fd;
  }

  /**
   * Creates a bottom half.
   *
   * @param cb runs on the loop's thread
   * @param name for diagnostics
   * @param sync cb starts no promise reactions (CallbackOptions.sync)
   * @returns the BH
   */
  create(cb: () => void, name = "bh", sync = false): Bh {
    const index = this.#free.length > 0 ? this.#free.pop()! : this.#cbs.length;
    if (index >= MAX_BHS) throw new RangeError(`Too many bottom halves (max ${MAX_BHS})`);
    this.#cbs[index] = cb;
    this.#sync[index] = sync;
    return new LoopBh(this, index, name);
  }

  /** Whether any BH is pending. */
  get pending(): boolean {
    return Atomics.load(this.#words, SUMMARY) !== 0;
  }

  /**
   * Runs every pending BH once, in index (creation) order. A BH scheduled
   * again while running runs in the next round, not this one.
   *
   * @returns how many ran
   */
  run(): number {
    const words = this.#words;
    let sum = Atomics.exchange(words, SUMMARY, 0);
    let ran = 0;
    while (sum !== 0) {
      const w = 31 - Math.clz32(sum & -sum);
      sum &= sum - 1;
      let bits = Atomics.exchange(words, FIRST + w, 0);
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const i = (w << 5) | b;
        const cb = this.#cbs[i];
        if (cb) {
          ran++;
          if (!this.#sync[i]) this.ranAsync = true;
          cb();
        }
      }
    }
    return ran;
  }

  /** @internal */
  schedule(index: number): void {
    const w = index >> 5;
    if (markPending(this.#words, FIRST + w, 1 << (index & 31), 1 << w) && this.polling) {
      notifyShared(this.#words, this.#fd);
    }
  }

  /** @internal */
  cancel(index: number): void {
    Atomics.and(this.#words, FIRST + (index >> 5), ~(1 << (index & 31)));
  }

  /** @internal */
  free(index: number): void {
    this.cancel(index);
    this.#cbs[index] = null;
    this.#free.push(index);
  }

  /** @internal */
  handle(index: number): BhHandle {
    return { state: this.#words.buffer, fd: this.#fd, index };
  }
}

class LoopBh implements Bh {
  #table: BhTable | null;
  #index: number;
  readonly name: string;

  constructor(table: BhTable, index: number, name: string) {
    this.#table = table;
    this.#index = index;
    this.name = name;
  }

  schedule(): void {
    this.#table?.schedule(this.#index);
  }

  cancel(): void {
    this.#table?.cancel(this.#index);
  }

  delete(): void {
    this.#table?.free(this.#index);
    this.#table = null;
  }

  handle(): BhHandle {
    if (!this.#table) throw new Error("Bottom half was deleted");
    return this.#table.handle(this.#index);
  }
}
