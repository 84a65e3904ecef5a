/**
 * Timers of one loop: per clock, a list kept sorted by expiry (QEMU's
 * QEMUTimerList). Few timers exist per loop, so insertion is a binary search
 * plus splice.
 *
 * @module
 */
import { clockId, clockNs } from "./clock.ts";
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

  constructor(list: TimerList, cb: () => void) {
    this.#list = list;
    this.#cb = cb;
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

  /**
   * Creates a timer; it fires once per `mod`, on the loop's thread.
   *
   * @param clock which clock `mod` values are on
   * @param cb the callback
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
  create(clock: ClockType, cb: () => void): Timer {
    const id = clockId(clock);
    let list = this.#lists.get(id);
    if (!list) {
      list = new TimerList(id);
      this.#lists.set(id, list);
      this.#order.push(list);
    }
    return new LoopTimer(list, cb);
  }

  /**
   * Nanoseconds until the earliest armed timer expires: 0 if one is due,
   * -1 if none is armed.
   *
   * @returns the delay in ns, or -1
   */
  deadlineNs(): number {
    let best = -1;
    for (const list of this.#order) {
      if (list.timers.length === 0) continue;
      const d = Math.max(0, list.timers[0].expireNs - clockNs(list.id));
      if (best < 0 || d < best) best = d;
    }
    return best;
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
    for (const list of this.#order) {
      const a = list.timers;
      if (a.length === 0) continue;
      const now = clockNs(list.id);
      let n = 0;
      while (n < a.length && a[n].expireNs <= now) n++;
      if (n === 0) continue;
      const due = a.splice(0, n);
      for (const t of due) {
        // A callback earlier in this round may have re-armed or deleted it.
        if (!t.pending || t.expireNs > now || a.includes(t)) continue;
        fired++;
        t.fire();
      }
    }
    return fired;
  }
}
