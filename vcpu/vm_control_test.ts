import assert from "node:assert/strict";
import { VmControl } from "./vm_control.ts";

Deno.test("first KVM_RUN timestamp round-trips per vCPU and keeps the first mark", () => {
  const ctl = new VmControl(new SharedArrayBuffer(VmControl.bytes(2)));
  assert.equal(ctl.firstRunEpochMs(0), undefined);
  const t = 1_764_108_000_123.456;
  ctl.markFirstRun(1, t);
  assert.equal(ctl.firstRunEpochMs(0), undefined);
  assert.ok(Math.abs(ctl.firstRunEpochMs(1)! - t) < 0.001);
  ctl.markFirstRun(1, t + 50);
  assert.ok(Math.abs(ctl.firstRunEpochMs(1)! - t) < 0.001);
});
