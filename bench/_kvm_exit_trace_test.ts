import assert from "node:assert/strict";
import { parseHist } from "./_kvm_exit_trace.ts";

Deno.test("parseHist reads a hist trigger's counts by key, ignoring comments and totals", () => {
  // As /sys/kernel/tracing/events/kvm/kvm_exit/hist prints it (Linux 6.1).
  const text = `# event histogram
#
# trigger info: hist:keys=exit_reason:vals=hitcount:sort=hitcount:size=256 [active]
#

{ exit_reason:        120 } hitcount:        644
{ exit_reason:       1024 } hitcount:       2905
{ exit_reason:        123 } hitcount:      34301

Totals:
    Hits: 37850
    Entries: 3
    Dropped: 0
`;
  assert.deepEqual([...parseHist(text)], [[120, 644], [1024, 2905], [123, 34301]]);
  assert.equal(parseHist("# nothing yet\n\nTotals:\n    Hits: 0\n").size, 0);
});
