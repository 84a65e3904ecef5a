import assert from "node:assert/strict";
import { median, p90, perRole, roundRatios, type RunResult, summarize } from "./_net_summary.ts";

function run(rtts: number[], rx: number, tx: number, mainCpu = 0): RunResult {
  return {
    rtts,
    rx,
    tx,
    pingCpu: new Map([["main", mainCpu]]),
    tcpCpu: new Map([["main", mainCpu * 2]]),
  };
}

Deno.test("median and p90 interpolate between ranks and ignore order", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  // 11 values 0..10: p90 is rank 9 exactly; 10 values 1..10: rank 8.1 -> 9.1.
  assert.equal(p90([10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]), 9);
  assert.ok(Math.abs(p90([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) - 9.1) < 1e-9);
  assert.equal(p90([5]), 5);
});

Deno.test("round ratios pair rounds, skip failed ones and point >1 at the better", () => {
  const ours = [run([2], 4, 1), null, run([1], 1, 1)];
  const theirs = [run([1], 2, 1), run([1], 1, 1), run([2], 2, 1)];
  // RTT: lower is better; ours 2 vs 1 -> 0.5, round 2 skipped, ours 1 vs 2 -> 2.
  assert.deepEqual(roundRatios(ours, theirs, (r) => median(r.rtts), true), [0.5, 2]);
  // MB/s: higher is better; 16/4 vs 16/2 -> 0.5; 16/1 vs 16/2 -> 2.
  assert.deepEqual(roundRatios(ours, theirs, (r) => 16 / r.rx, false), [0.5, 2]);
});

Deno.test("summary marks a target met only by the median of the round ratios", () => {
  const q = [run([1, 1, 1], 1, 1), run([1, 1, 1], 1, 1), run([1, 1, 1], 1, 1)];
  // Ping ratios per round 1/1.1, 1/2, 1/1.2: median 0.83 (>= 0.8, met);
  // host->guest 1/1, 1/1.5, 1/1.6: median 0.67 (not met).
  const d = [run([1.1], 1, 1), run([2], 1.5, 1), run([1.2], 1.6, 1)];
  const out = summarize(
    new Map([["Q", q], ["D", d]]),
    [{ key: "D", qemu: "Q", target: 0.8 }],
    { pings: 1, mib: 1, base: "" },
  );
  const row = (name: string) => out.split("\n").find((l) => l.includes(name))!.split(" | ");
  const ping = row("ping RTT median");
  assert.equal(ping[4], "0.83x");
  assert.equal(ping[5], "0.91, 0.50, 0.83");
  assert.equal(ping[7], "yes |");
  const rx = row("host->guest");
  assert.equal(rx[4], "0.67x");
  assert.equal(rx[7], "no |");
});

Deno.test("summary compares against a base tree round by round", () => {
  const q = [run([1], 1, 1), run([1], 1, 1)];
  const d = [run([1], 1, 1), run([1], 1, 1)];
  const b = [run([2], 1, 1), run([3], 1, 1)];
  const out = summarize(
    new Map([["Q", q], ["D", d], ["BASE x", b]]),
    [{ key: "D", qemu: "Q", target: 0.8 }, { key: "BASE x", qemu: "Q", target: 0.8 }],
    { pings: 1, mib: 1, base: "BASE" },
  );
  assert.match(out, /\| D vs BASE x \|/);
  assert.match(out, /\| ping RTT median, ms \| 2\.50x \| 2\.00, 3\.00 \|/);
});

Deno.test("CPU per role is the median over runs, scaled, largest first", () => {
  const a = new Map([["main", 0.04], ["vcpu-*", 0.01]]);
  const b = new Map([["main", 0.02], ["vcpu-*", 0.03]]);
  const c = new Map([["main", 0.03]]);
  const r = perRole([a, b, c], 1000 / 10);
  assert.equal(r.roles, "main 3.0, vcpu-* 1.0");
  assert.ok(Math.abs(r.all - 5) < 1e-9); // totals 5, 5, 3 ms per ping
});
