import assert from "node:assert/strict";
import { defaultLanes, KVM_FILE_SECONDS, splitIntoLanes } from "./kvm_lanes.ts";

Deno.test("splitIntoLanes: every file once, in its order, lanes of about equal time", () => {
  const files = Object.keys(KVM_FILE_SECONDS).sort();
  const lanes = splitIntoLanes(files, 2);
  assert.equal(lanes.length, 2);
  assert.deepEqual(lanes.flat().sort(), files);
  for (const l of lanes) assert.deepEqual(l, [...l].sort());
  const total = (l: string[]) => l.reduce((s, f) => s + KVM_FILE_SECONDS[f] + 5, 0);
  const [a, b] = lanes.map(total);
  // The longest file (217 s) is under a quarter of the whole: the lanes come out close.
  assert.ok(Math.abs(a - b) <= 30, `lanes of ${a} s and ${b} s`);
  assert.ok(Math.max(a, b) < 0.55 * (a + b));
});

Deno.test("splitIntoLanes: no empty lane, one lane keeps everything, unknown files count 30 s", () => {
  assert.deepEqual(splitIntoLanes(["x", "y"], 4, {}), [["x"], ["y"]]);
  assert.deepEqual(splitIntoLanes(["x", "y", "z"], 1, {}), [["x", "y", "z"]]);
  assert.deepEqual(splitIntoLanes([], 2, {}), []);
  // x (100) alone; y and z (30 each by default) together.
  assert.deepEqual(splitIntoLanes(["y", "x", "z"], 2, { x: 100 }), [["x"], ["y", "z"]]);
});

Deno.test("defaultLanes: DENOVMM_NESTED_LANES wins, and a bad value is refused", () => {
  const before = Deno.env.get("DENOVMM_NESTED_LANES");
  try {
    Deno.env.set("DENOVMM_NESTED_LANES", "1");
    assert.equal(defaultLanes(), 1);
    Deno.env.set("DENOVMM_NESTED_LANES", "3");
    assert.equal(defaultLanes(), 3);
    Deno.env.set("DENOVMM_NESTED_LANES", "two");
    assert.throws(() => defaultLanes(), /DENOVMM_NESTED_LANES=two/);
    Deno.env.delete("DENOVMM_NESTED_LANES");
    const n = defaultLanes();
    assert.ok(n >= 1 && n <= Math.min(2, navigator.hardwareConcurrency));
  } finally {
    if (before === undefined) Deno.env.delete("DENOVMM_NESTED_LANES");
    else Deno.env.set("DENOVMM_NESTED_LANES", before);
  }
});
