import assert from "node:assert/strict";
import { appendBootLog, readBootLog } from "./_boot_log.ts";

Deno.test("boot log: boots and the floor come back, Maps kept, a cut last line skipped", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/log.jsonl`;
    assert.equal(readBootLog(path).boots.size, 0);
    assert.equal(readBootLog(undefined).floor, undefined);
    appendBootLog(path, { floor: { denoRunMs: 700, workerMs: 400 } });
    const boot = { ms: 11_000, guestCpu: new Map([["vcpu", 4.5]]), status: { VmRSS: 1 } };
    appendBootLog(path, { round: 0, key: "qemu/1", boot });
    appendBootLog(path, { round: 1, key: "qemu/1", boot: { ...boot, ms: 12_000 } });
    // A host that hung mid-write leaves part of a line.
    Deno.writeTextFileSync(path, '{"round":1,"key":"denovmm/1","boot":{"ms":9', {
      append: true,
    });
    const log = readBootLog<typeof boot>(path);
    assert.deepEqual(log.floor, { denoRunMs: 700, workerMs: 400 });
    assert.deepEqual([...log.boots.keys()], ["0:qemu/1", "1:qemu/1"]);
    assert.deepEqual(log.boots.get("0:qemu/1"), boot);
    assert.ok(log.boots.get("0:qemu/1")!.guestCpu instanceof Map);
    assert.equal(log.boots.get("1:qemu/1")!.ms, 12_000);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
