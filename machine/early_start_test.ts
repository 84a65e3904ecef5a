import assert from "node:assert/strict";
import { NO_EARLY_START_FLAGS, startFirstVcpuEarly } from "./early_start.ts";
import { parseCli, UsageError } from "./cli.ts";
import { discardPrestartedVcpuWorkers, takePrestartedVcpuWorker } from "../vcpu/prestart.ts";

Deno.test("no early vCPU Worker for help, version, daemonize or thread placement", () => {
  for (const flag of NO_EARLY_START_FLAGS) {
    assert.equal(startFirstVcpuEarly(["--kernel", "bzImage", flag, "x"]), false, flag);
    assert.equal(startFirstVcpuEarly([`${flag}=0=1`]), false, `${flag}=...`);
  }
  assert.equal(takePrestartedVcpuWorker(0), undefined);
});

Deno.test("the placement flags and the rest are flags the command knows", () => {
  for (const flag of NO_EARLY_START_FLAGS) {
    try {
      parseCli([flag, "1"]);
    } catch (e) {
      assert.ok(e instanceof UsageError);
      assert.doesNotMatch(e.message, /Unknown option/, flag);
    }
  }
  for (const flag of ["--vcpu-affinity", "--affinity", "--sched", "--cgroup"]) {
    assert.ok(NO_EARLY_START_FLAGS.includes(flag), flag);
  }
});

Deno.test("an ordinary run starts vCPU 0's Worker early", () => {
  try {
    assert.equal(startFirstVcpuEarly(["--kernel", "bzImage", "--cpus", "2"]), true);
    const w = takePrestartedVcpuWorker(0);
    assert.ok(w);
    w.worker.terminate();
    assert.equal(startFirstVcpuEarly([]), true);
    const demo = takePrestartedVcpuWorker(0);
    assert.ok(demo);
    demo.worker.terminate();
    assert.equal(takePrestartedVcpuWorker(1), undefined, "only vCPU 0: the count is not parsed");
  } finally {
    discardPrestartedVcpuWorkers();
  }
});
