import assert from "node:assert/strict";
import { hostCpuBrand, hostCpuid } from "./host_cpuid.ts";

// The C compiler's __get_cpuid on the same leaves: the stub must agree with
// the instruction as C runs it. Leaves whose values depend on the CPU the
// thread runs on (APIC ids in leaf 1, 0xb, ...) are left out.
const LEAVES = [0, 0x8000_0000, 0x8000_0002, 0x8000_0003, 0x8000_0004];

Deno.test("hostCpuid runs the CPUID instruction: the same registers as C's __get_cpuid", async () => {
  if (Deno.build.arch !== "x86_64") {
    assert.equal(hostCpuid([0]), null);
    return;
  }
  const src = `#include <cpuid.h>
#include <stdio.h>
int main(void) {
  unsigned leaves[] = {${LEAVES.join(", ")}}, a, b, c, d;
  for (int i = 0; i < ${LEAVES.length}; i++) {
    a = b = c = d = 0;
    __cpuid_count(leaves[i], 0, a, b, c, d);
    printf("%u %u %u %u\\n", a, b, c, d);
  }
  return 0;
}
`;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/c.c`, src);
    const cc = await new Deno.Command("gcc", { args: ["-o", `${dir}/c`, `${dir}/c.c`] }).output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const out = await new Deno.Command(`${dir}/c`).output();
    assert.equal(out.code, 0);
    const want = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) =>
      l.split(" ").map(Number)
    );
    const got = hostCpuid(LEAVES)!.map((r) => [r.eax, r.ebx, r.ecx, r.edx]);
    assert.deepEqual(got, want);
    // A subleaf reaches ECX: leaf 0 ignores it, so the answer is the same.
    assert.deepEqual(hostCpuid([[0, 5]])![0], hostCpuid([0])![0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hostCpuBrand spells the brand leaves up to their first NUL", () => {
  const [max] = hostCpuid([0x8000_0000]) ?? [];
  if (!max || max.eax < 0x8000_0004) {
    assert.equal(hostCpuBrand(), undefined);
    return;
  }
  const regs = hostCpuid([0x8000_0002, 0x8000_0003, 0x8000_0004])!;
  let text = "";
  for (const r of regs) {
    for (const x of [r.eax, r.ebx, r.ecx, r.edx]) {
      for (let i = 0; i < 4; i++) text += String.fromCharCode((x >>> (8 * i)) & 0xff);
    }
  }
  const spelled = text.split("\0")[0];
  assert.equal(hostCpuBrand(), spelled.trim() === "" ? undefined : spelled);
});
