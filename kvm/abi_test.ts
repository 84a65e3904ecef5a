// Checks every layout, ioctl number and constant in abi.ts against
// <linux/kvm.h> by compiling and running a C probe.
import assert from "node:assert/strict";
import { CONSTANTS, IOCTLS, LAYOUTS } from "./abi.ts";

async function probe(): Promise<Map<string, number>> {
  const lines = [
    "#include <stdio.h>",
    "#include <stddef.h>",
    "#include <linux/kvm.h>",
    "int main(void) {",
  ];
  for (const s of LAYOUTS) {
    lines.push(`printf("sizeof ${s.cType} %zu\\n", sizeof(${s.cType}));`);
    for (const f of Object.keys(s.fields)) {
      lines.push(`printf("offsetof ${s.cType} ${f} %zu\\n", offsetof(${s.cType}, ${f}));`);
    }
  }
  for (const name of [...Object.keys(IOCTLS), ...Object.keys(CONSTANTS)]) {
    lines.push(`printf("const ${name} %lu\\n", (unsigned long)(${name}));`);
  }
  lines.push("return 0; }");
  const dir = await Deno.makeTempDir({ prefix: "kvm-abi-probe-" });
  try {
    await Deno.writeTextFile(`${dir}/probe.c`, lines.join("\n"));
    const cc = await new Deno.Command("cc", {
      args: ["-o", `${dir}/probe`, `${dir}/probe.c`],
    }).output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const run = await new Deno.Command(`${dir}/probe`).output();
    assert.equal(run.code, 0);
    const values = new Map<string, number>();
    for (const line of new TextDecoder().decode(run.stdout).trim().split("\n")) {
      const i = line.lastIndexOf(" ");
      values.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return values;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kvm/abi.ts matches <linux/kvm.h>", async () => {
  const c = await probe();
  const wrong: string[] = [];
  const expect = (key: string, ours: number) => {
    if (c.get(key) !== ours) wrong.push(`${key}: ours ${ours}, C ${c.get(key)}`);
  };
  for (const s of LAYOUTS) {
    expect(`sizeof ${s.cType}`, s.size);
    for (const [f, off] of Object.entries(s.fields)) expect(`offsetof ${s.cType} ${f}`, off);
  }
  for (const [k, v] of Object.entries(IOCTLS)) expect(`const ${k}`, v);
  for (const [k, v] of Object.entries(CONSTANTS)) expect(`const ${k}`, v);
  assert.deepEqual(wrong, [], `ABI differences:\n${wrong.join("\n")}`);
});
