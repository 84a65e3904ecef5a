import assert from "node:assert/strict";
import { DEFAULT_START_NS, PoolGrowth } from "./_pool_growth.ts";
import type { EventLoop, Timer } from "../mainloop/types.ts";

/** A loop with a settable clock and one recorded timer. */
function fakeLoop() {
  const state = { now: 0, armedAt: -1, cb: null as null | (() => void) };
  const loop = {
    now: () => state.now,
    timer(_clock: string, cb: () => void): Timer {
      state.cb = () => {
        state.armedAt = -1;
        cb();
      };
      return {
        mod: (at: number) => (state.armedAt = at),
        del: () => (state.armedAt = -1),
        get pending() {
          return state.armedAt >= 0;
        },
      };
    },
  } as unknown as EventLoop;
  return { loop, state };
}

Deno.test("pool growth: warm threads start at once, later ones after a backlog lasts a start", () => {
  const { loop, state } = fakeLoop();
  let regrow = 0;
  const g = new PoolGrowth(loop, { warm: 2, grow: () => regrow++ });
  // No thread at all, or fewer than warm: start now, backlog or not.
  assert.equal(g.wants(0, false), true);
  assert.equal(g.wants(1, false), true);
  assert.equal(g.wants(2, false), false);
  // A backlog: wait one (default) start, with a timer to look again.
  state.now = 1_000;
  assert.equal(g.wants(2, true), false);
  assert.equal(state.armedAt, 1_000 + DEFAULT_START_NS);
  state.now += DEFAULT_START_NS - 1;
  assert.equal(g.wants(2, true), false);
  state.now += 1;
  state.cb!();
  assert.equal(regrow, 1); // the pool re-checks when the timer fires...
  assert.equal(g.wants(2, true), true); // ...and the backlog has lasted a start
  // A new backlog starts a new wait; the queue drained in between resets it.
  assert.equal(g.wants(3, true), false);
  state.now += DEFAULT_START_NS / 2;
  g.drained();
  assert.equal(g.wants(3, true), false);
  state.now += DEFAULT_START_NS / 2;
  assert.equal(g.wants(3, true), false, "the wait restarted when the queue drained");
});

Deno.test("pool growth: the wait is the measured start time, bounded", () => {
  const { loop, state } = fakeLoop();
  const g = new PoolGrowth(loop, { warm: 0, grow: () => {} });
  assert.equal(g.wants(0, true), true); // no thread: always start one
  g.started(700_000_000); // a slow host: 0.7 s per Worker
  assert.equal(g.startNs, 700_000_000);
  assert.equal(g.wants(1, true), false);
  state.now = 699_999_999;
  assert.equal(g.wants(1, true), false);
  state.now = 700_000_000;
  assert.equal(g.wants(1, true), true);
  g.started(10); // bounded below (1 ms) and above (2 s)
  assert.equal(g.startNs, 1_000_000);
  g.started(1e12);
  assert.equal(g.startNs, 2_000_000_000);
  assert.throws(() => new PoolGrowth(loop, { warm: -1, grow: () => {} }), RangeError);
});
