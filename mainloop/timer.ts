/**
 * Timers of one loop: per clock, a list kept sorted by expiry (QEMU's
 * QEMUTimerList). Few timers exist per loop, so insertion is a binary search
 * plus splice.
 *
 * @module
 */
import { clockId, clockNsInto } from "./clock.ts";
import type { ClockType, Timer } from "./types.ts";

class TimerList {
  readonly id: number;
  readonly timers: LoopTimer[] = [];

  constructor(id: number) {
    this.id = id;
  }

  insert(t: LoopTimer): void {
    const a = this.timers;
    let lo = 0, hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (a[mid].expireNs <= t.expireNs) lo = mid + 1;
      else hi = mid;
    }
    a.splice(lo, 0, t);
  }

  remove(t: LoopTimer): void {
    const i = this.timers.indexOf(t);
    if (i >= 0) this.timers.splice(i, 1);
  }
}

class LoopTimer implements Timer {
  #list: TimerList;
  #cb: () => void;
  expireNs = 0;
  #pending = false;
  /** The callback starts no promise reactions (CallbackOptions.sync). */
  readonly sync: boolean;

  constructor(list: TimerList, cb: () => void, sync: boolean) {
    this.#list = list;
    this.#cb = cb;
    this.sync = sync;
  }

  get pending(): boolean {
    return this.#pending;
  }

  mod(expireNs: number): void {
    if (!Number.isFinite(expireNs)) throw new RangeError(`Invalid timer expiry ${expireNs}`);
    if (this.#pending) this.#list.remove(this);
    this.expireNs = expireNs;
    this.#pending = true;
    this.#list.insert(this);
  }

  del(): void {
    if (!this.#pending) return;
    this.#pending = false;
    this.#list.remove(this);
  }

  /** @internal */
  fire(): void {
    this.#pending = false;
    this.#cb();
  }
}

/** All timers of a loop, grouped by the clock id they read. */
export class TimerGroup {
  #lists = new Map<number, TimerList>();
  #order: TimerList[] = [];
  /** A clock read (clockNsInto: no heap number per read). */
  #now = new Float64Array(1);
  /**
   * Set by {@link TimerGroup.run} when it fired a timer not created `sync`;
   * the loop clears it.
   */
  ranAsync = false;

  /**
   * Creates a timer; it fires once per `mod`, on the loop's thread.
   *
   * @param clock which clock `mod` values are on
   * @param cb the callback
   * @param sync cb starts no promise reactions (CallbackOptions.sync)
   * @returns the timer
   * @example
   * ```ts
   * import { TimerGroup } from "./timer.ts";
   * const g = new TimerGroup();
   * const t = g.create("monotonic", () => console.log("fired"));
   * t.mod(0);
   * g.run();
   * ```
   */
  create(clock: ClockType, cb: () => void, sync = false): Timer {
    const id = clockId(clock);
    let list = this.#lists.get(id);
    if (!list) {
      list = new TimerList(id);
      this.#lists.set(id, list);
      this.#order.push(list);
    }
    return new LoopTimer(list, cb, sync);
  }

  /**
   * Nanoseconds until the earliest armed timer expires (0 if one is due, -1
   * if none is armed), written into `out[at]`: a loop reads it every
   * iteration, and a double returned would be a new heap number each time.
   *
   * @param out where the delay goes
   * @param at the index in `out`
   */
  deadlineNsInto(out: Float64Array, at: number): void {
    let best = -1;
    const order = this.#order;
    for (let i = 0; i < order.length; i++) {
      const list = order[i];
      if (list.timers.length === 0) continue;
      clockNsInto(list.id, this.#now, 0);
      const d = Math.max(0, list.timers[0].expireNs - this.#now[0]);
      if (best < 0 || d < best) best = d;
    }
    out[at] = best;
  }

  /**
   * Fires every expired timer, per clock in expiry order. A timer re-armed to
   * an already-passed time from its own callback fires in the next round, so
   * a loop iteration always ends.
   *
   * @returns how many fired
   */
  run(): number {
    let fired = 0;
    const order = this.#order;
    for (let i = 0; i < order.length; i++) {
      const list = order[i];
      const a = list.timers;
      if (a.length === 0) continue;
      clockNsInto(list.id, this.#now, 0);
      const now = this.#now[0];
      let n = 0;
      while (n < a.length && a[n].expireNs <= now) n++;
      if (n === 0) continue;
      const due = a.splice(0, n);
      for (const t of due) {
        // A callback earlier in this round may have re-armed or deleted it.
        if (!t.pending || t.expireNs > now || a.includes(t)) continue;
        fired++;
        if (!t.sync) this.ranAsync = true;
        t.fire();
      }
    }
    return fired;
  }
}
