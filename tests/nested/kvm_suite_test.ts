import assert from "node:assert/strict";
import { linePrinter, parseSuiteOutput, runKvmSuite, suiteCommand } from "./kvm_suite.ts";
import { NestedHostError, type NestedOptions } from "./run_nested.ts";

/** Runs a suite command with the local shell and Deno, as the nested host would. */
async function runHere(command: string, cwd: string): Promise<{ code: number; output: string }> {
  const denoDir = Deno.execPath().replace(/\/[^/]*$/, "");
  const out = await new Deno.Command("sh", {
    args: ["-c", command],
    cwd,
    env: { PATH: `${denoDir}:${Deno.env.get("PATH")}` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test("suiteCommand runs each file and marks its end with its exit status", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-suite-" });
  try {
    await Deno.writeTextFile(`${dir}/a_test.ts`, `Deno.test("a", () => {});`);
    await Deno.writeTextFile(
      `${dir}/b_test.ts`,
      `Deno.test("b", () => { throw new Error("no"); });`,
    );
    const files = ["a_test.ts", "b_test.ts", "missing_test.ts"];
    const r = await runHere(suiteCommand(files, ["--filter", "/^a( x)?$/"]), dir);
    const { finished, pending } = parseSuiteOutput(r.output, files);
    assert.deepEqual(pending, []);
    assert.deepEqual(finished.map((f) => [f.file, f.code === 0]), [
      ["a_test.ts", true],
      ["b_test.ts", true], // filtered out: "b" does not match; the quoted pattern came through whole
      ["missing_test.ts", false],
    ]);
    assert.match(finished[0].output, /ok \| 1 passed/);
    assert.match(finished[1].output, /ok \| 0 passed \| 0 failed \| 1 filtered out/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a host that dies mid-suite costs only the unfinished files", async () => {
  const files = ["tests/kvm/a_test.ts", "tests/kvm/b_test.ts", "tests/kvm/c_test.ts"];
  const commands: string[] = [];
  const timeouts: number[] = [];
  const run = (command: string, opts: NestedOptions) => {
    commands.push(command);
    timeouts.push(opts.timeoutS ?? 0);
    assert.equal(opts.idleTimeoutS, 300);
    assert.equal(opts.cpus, 1);
    if (commands.length === 1) {
      const partial = "ok | 2 passed | 0 failed\n#denovmm-kvm-file-done tests/kvm/a_test.ts 0\n" +
        "running 3 tests from ./tests/kvm/b_test.ts\nb1 ... ok\n";
      return Promise.reject(
        new NestedHostError("Nested command printed nothing for 300 s", "tail", partial, true),
      );
    }
    return Promise.resolve({
      code: 0,
      output: "ok | 3 passed | 0 failed\n#denovmm-kvm-file-done tests/kvm/b_test.ts 0\n" +
        "FAILED | 0 passed | 1 failed\n#denovmm-kvm-file-done tests/kvm/c_test.ts 1\n",
    });
  };
  const lines: string[] = [];
  const r = await runKvmSuite(files, { run, log: (l) => lines.push(l), budgetS: 1000 });
  assert.equal(commands.length, 2);
  assert.match(commands[0], /a_test\.ts.*b_test\.ts.*c_test\.ts/);
  assert.doesNotMatch(commands[1], /a_test\.ts/); // finished files are not run again
  assert.match(commands[1], /b_test\.ts.*c_test\.ts/);
  assert.ok(timeouts[1] <= timeouts[0]); // one budget for all hosts
  assert.deepEqual(r.finished.map((f) => [f.file, f.code]), [
    ["tests/kvm/a_test.ts", 0],
    ["tests/kvm/b_test.ts", 0],
    ["tests/kvm/c_test.ts", 1],
  ]);
  // b's partial first run is not counted: its output is the second host's.
  assert.doesNotMatch(r.finished[1].output, /b1 \.\.\. ok/);
  assert.deepEqual(r.unfinished, []);
  assert.equal(r.hostFailures.length, 1);
  assert.ok(lines.some((l) => /fresh nested host for the 2 unfinished/.test(l)));
});

Deno.test("hosts that keep failing leave the rest unfinished after the last attempt", async () => {
  let calls = 0;
  const run = () => {
    calls++;
    return Promise.reject(new NestedHostError("The nested host stopped before", "", "", true));
  };
  const r = await runKvmSuite(["x_test.ts", "y_test.ts"], { run, attempts: 2, log: () => {} });
  assert.equal(calls, 2);
  assert.deepEqual(r.unfinished, ["x_test.ts", "y_test.ts"]);
  assert.equal(r.hostFailures.length, 2);
  // Errors other than a host failure are the runner's own bugs: they propagate.
  await assert.rejects(
    runKvmSuite(["x_test.ts"], { run: () => Promise.reject(new TypeError("bug")), log: () => {} }),
    TypeError,
  );
});

Deno.test("lanes run at once, each with its share, and their results merge in the given order", async () => {
  const files = ["tests/kvm/b_test.ts", "tests/kvm/c_test.ts", "tests/kvm/qmp_test.ts"];
  const started: string[] = [];
  let release!: () => void;
  const bothStarted = new Promise<void>((r) => release = r);
  const lines: string[] = [];
  const run = async (command: string) => {
    started.push(command);
    if (started.length === 2) release();
    // Neither host ends before the other has started: they run at once.
    await bothStarted;
    const mine = files.filter((f) => command.includes(f));
    if (mine.includes("tests/kvm/c_test.ts") && started.length === 2) {
      // c's lane: its first host dies before c ends; the lane retries it alone.
      throw new NestedHostError("The nested host stopped", "", "", true);
    }
    return {
      code: 0,
      output: mine.map((f) => `ok | 1 passed | 0 failed\n#denovmm-kvm-file-done ${f} 0\n`)
        .join(""),
    };
  };
  const r = await runKvmSuite(files, {
    run,
    lanes: 2,
    stream: false,
    log: (l) => lines.push(l),
    budgetS: 1000,
  });
  assert.equal(started.length, 3);
  // qmp (217 s) has a lane of its own; b and c (30 s each, not listed) share the other.
  assert.deepEqual(lines.slice(0, 2), [
    "== lane 1: tests/kvm/qmp_test.ts",
    "== lane 2: tests/kvm/b_test.ts tests/kvm/c_test.ts",
  ]);
  assert.deepEqual(r.finished.map((f) => f.file), files);
  assert.deepEqual(r.unfinished, []);
  assert.deepEqual(r.hostFailures, ["lane 2: The nested host stopped"]);
  assert.ok(lines.some((l) => l.startsWith("[lane 2] == a fresh nested host for the 2")));
});

Deno.test("linePrinter marks whole lines only, however the chunks fall", () => {
  const out: string[] = [];
  const p = linePrinter("[lane 2] ", (t) => out.push(t));
  p.write("runn");
  assert.deepEqual(out, []);
  p.write("ing 3 tests\nok\n\nFAIL");
  p.write("ED | 0 passed");
  p.flush();
  p.flush();
  assert.equal(
    out.join(""),
    "[lane 2] running 3 tests\n[lane 2] ok\n[lane 2] \n[lane 2] FAILED | 0 passed\n",
  );
});
