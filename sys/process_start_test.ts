import assert from "node:assert/strict";
import { processStartEpochMs, startTicksOf } from "./process_start.ts";

Deno.test("the start time field is found after a command name with spaces and parentheses", () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3)); // fields 3..52
  fields[22 - 3] = "987654";
  assert.equal(startTicksOf(`1234 (we (ird) name) ${fields.join(" ")}`), 987654);
  assert.throws(() => startTicksOf("1 (x) S 1 2"), /No start time/);
});

Deno.test("this process started before its runtime's time origin, and after its parent's spawn", async () => {
  const start = processStartEpochMs();
  const origin = performance.timeOrigin;
  // (A test module's isolate may start long after the process: only the order holds here.)
  assert.ok(start <= origin + 10, `start ${start} vs timeOrigin ${origin}`);
  // A child spawned now reports a start at or after the spawn (to the 10 ms tick).
  const before = performance.timeOrigin + performance.now();
  const src = `import { processStartEpochMs } from ${
    JSON.stringify(import.meta.resolve("./process_start.ts"))
  }; console.log(processStartEpochMs());`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", src],
    stdout: "piped",
  }).output();
  const after = performance.timeOrigin + performance.now();
  const child = Number(new TextDecoder().decode(out.stdout));
  assert.ok(child >= before - 10 && child <= after, `child ${child} in [${before}, ${after}]`);
});
