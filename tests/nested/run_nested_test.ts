/**
 * End-to-end checks of the nested host. Each boots QEMU (~15-20 s on 2 cores),
 * so they only run when asked: `DENOVMM_NESTED_E2E=1 deno test -A tests/nested/`.
 */
import assert from "node:assert/strict";
import { NestedHostError, runNested, shellQuote } from "./run_nested.ts";
import { REPO_ROOT } from "../fixtures/debian.ts";

const e2e = Deno.env.get("DENOVMM_NESTED_E2E") === "1";

Deno.test("shellQuote makes one shell word of anything", () => {
  assert.equal(shellQuote("abc/d.ts"), "abc/d.ts");
  assert.equal(shellQuote("a b"), "'a b'");
  assert.equal(shellQuote("it's"), "'it'\\''s'");
  assert.equal(shellQuote(""), "''");
});

Deno.test("runNested validates its options before booting anything", async () => {
  await assert.rejects(() => runNested("true", { cpus: 0 }), RangeError);
  await assert.rejects(() => runNested("true", { memoryMiB: 1.5 }), RangeError);
  await assert.rejects(() => runNested("true", { env: { "A-B": "1" } }), TypeError);
});

Deno.test({
  name: "nested: exit status, stdout/stderr split, environment, cwd and /dev/kvm",
  ignore: !e2e,
  async fn() {
    const r = await runNested(
      `echo "out $DENOVMM_NESTED $NO_COLOR $X"; echo err >&2; pwd; test -c /dev/kvm && echo kvm; exit 7`,
      { env: { X: "it's" }, timeoutS: 300 },
    );
    assert.equal(r.code, 7, r.output);
    assert.match(r.output, /out 1 1 it's\n/);
    assert.match(r.output, /err\n/);
    assert.ok(r.output.includes(`${REPO_ROOT}\n`), r.output);
    assert.match(r.output, /kvm\n/);
    assert.ok(r.bootS > 0 && r.commandS >= 0 && r.totalS > r.bootS);
  },
});

Deno.test({
  name: "nested: a CPU without SVM fails clearly with the console tail",
  ignore: !e2e,
  async fn() {
    await assert.rejects(
      () => runNested("true", { cpu: "max,-svm", timeoutS: 300 }),
      (err: unknown) => {
        assert.ok(err instanceof NestedHostError);
        assert.match(err.message, /\/dev\/kvm did not appear/);
        assert.match(err.consoleTail, /DENOVMM-L1 kvm=missing/);
        return true;
      },
    );
  },
});

Deno.test({
  name: "nested: the time limit kills QEMU and says so",
  ignore: !e2e,
  async fn() {
    const t0 = performance.now();
    await assert.rejects(() => runNested("sleep 600", { timeoutS: 40 }), /timed out after 40 s/);
    assert.ok(performance.now() - t0 < 120_000);
  },
});

Deno.test({
  name: "nested: a command silent for idleTimeoutS is taken for a hung host, its output kept",
  ignore: !e2e,
  async fn() {
    const err = await runNested("echo before; sleep 600", { timeoutS: 300, idleTimeoutS: 20 })
      .then(() => undefined, (e) => e);
    assert.ok(err instanceof NestedHostError, String(err));
    assert.match(err.message, /printed nothing for 20 s/);
    assert.equal(err.started, true);
    assert.match(err.output, /^before$/m);
    // Where the L1's CPUs were (an idle L1 sits in its kernel's idle loop).
    assert.match(err.message, /L1 CPU 0: RIP ffffffff[0-9a-f]{8}\/CPL0 then [0-9a-f]{16}\/CPL0/);
  },
});
