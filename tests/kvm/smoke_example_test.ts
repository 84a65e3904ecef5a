// examples/linux_smoke.ts, the library's kernel smoke test, run as a user
// runs it (`deno run --allow-ffi`): Debian's stock kernel boots to a shell,
// the example types `uname -r` and `echo $((6 * 7))` through vm.serial,
// checks the answers, and the guest powers off when the shell exits.
import assert from "node:assert/strict";
import { linuxFixture, SMOKE_PROMPT, smokeInitramfs } from "./fixtures.ts";
import { runVmm } from "./_vmm_process.ts";

Deno.test("the smoke example boots, types commands, checks output, powers off", async () => {
  const f = await linuxFixture();
  const initrd = await smokeInitramfs();
  const out = await runVmm([f.kernel, initrd, SMOKE_PROMPT], { script: "examples/linux_smoke.ts" });
  const stdout = out.stdout;
  const log = `${stdout}\n${out.stderr}`;
  const m = stdout.match(/smoke: release=(\S+) answer=(\S+) end=(\S+) exit=(\d+)/);
  assert.ok(m, log);
  assert.equal(m[1], f.release, log);
  assert.equal(m[2], "42", log);
  assert.equal(m[3], "poweroff", log);
  assert.equal(m[4], "0", log);
  assert.match(stdout, /PASS$/m, log);
  assert.equal(out.code, 0, log);
  console.log(stdout.trim());
});
