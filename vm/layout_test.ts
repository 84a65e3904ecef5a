// PCI layout decided once: slots, INTx swizzle, MSI-X GSI runs, and a
// configuration that does not fit is one VmConfigError line.
import assert from "node:assert/strict";
import {
  intxGsi,
  MAX_PCI_FUNCTIONS,
  MSI_GSI_BASE,
  pciIrqRoutesFor,
  planPciFunctions,
} from "./layout.ts";
import { VmConfigError } from "./config.ts";

Deno.test("INTx swizzle and _PRT entries", () => {
  assert.equal(intxGsi(1, 0), 17);
  assert.equal(intxGsi(7, 1), 16);
  const prt = pciIrqRoutesFor([1, 2]);
  assert.equal(prt.length, 8);
  assert.deepEqual(prt[4], { slot: 2, pin: 0, gsi: 18 });
});

Deno.test("functions get consecutive slots and disjoint MSI GSI runs", () => {
  const plan = planPciFunctions([2, 5, 1]);
  assert.deepEqual(plan.map((p) => p.slot), [1, 2, 3]);
  assert.deepEqual(plan.map((p) => p.msiGsiBase), [
    MSI_GSI_BASE,
    MSI_GSI_BASE + 2,
    MSI_GSI_BASE + 7,
  ]);
  assert.deepEqual(plan.map((p) => p.intxGsi), [17, 18, 19]);
});

Deno.test("more functions than bus 0 has slots is a VmConfigError, not a RangeError", () => {
  assert.equal(planPciFunctions(new Array(MAX_PCI_FUNCTIONS).fill(2)).length, 31);
  assert.throws(
    () => planPciFunctions(new Array(MAX_PCI_FUNCTIONS + 2).fill(2)),
    (e: unknown) => {
      assert.ok(e instanceof VmConfigError, String(e));
      assert.match(e.message, /Too many PCI devices: 33 asked for, bus 0 has room for 31/);
      return true;
    },
  );
  assert.throws(() => planPciFunctions([4000, 100]), /Too many interrupt vectors/);
});
