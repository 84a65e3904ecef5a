import assert from "node:assert/strict";
import { vcpuCpuid } from "./x86_cpu.ts";
import type { CpuidEntry } from "../kvm/kvm.ts";

const entry = (fn: number, eax = 0): CpuidEntry => ({
  function: fn,
  index: 0,
  flags: 0,
  eax,
  ebx: 0,
  ecx: 0,
  edx: 0,
});

/** The brand string the three leaves spell, read back the way a CPU's reader does. */
function brandOf(entries: CpuidEntry[]): string {
  const bytes = new Uint8Array(48);
  const v = new DataView(bytes.buffer);
  for (let leaf = 0; leaf < 3; leaf++) {
    const e = entries.find((x) => x.function === 0x8000_0002 + leaf)!;
    [e.eax, e.ebx, e.ecx, e.edx].forEach((r, i) => v.setUint32(leaf * 16 + i * 4, r, true));
  }
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(bytes.subarray(0, end < 0 ? 48 : end));
}

Deno.test("the brand string fills leaves 0x80000002-4, added when KVM's list lacks them", () => {
  const supported = [entry(0), entry(1), entry(0x8000_0000, 0x8000_0008), entry(0x8000_0003)];
  const out = vcpuCpuid(supported, 0, 1, { brand: "AMD EPYC 7B13 64-Core Processor" });
  assert.equal(brandOf(out), "AMD EPYC 7B13 64-Core Processor");
  for (let f = 0x8000_0002; f <= 0x8000_0004; f++) {
    assert.equal(out.filter((e) => e.function === f).length, 1, `leaf ${f.toString(16)} once`);
  }
  // "AMD " in EAX of the first leaf, little-endian, as the hardware has it.
  assert.equal(out.find((e) => e.function === 0x8000_0002)!.eax, 0x2044_4d41);
  // The input list is not modified.
  assert.equal(supported.length, 4);
});

Deno.test("the brand string is cut at 47 bytes and kept to printable ASCII", () => {
  const supported = [entry(0x8000_0000, 0x8000_001f)];
  const long = vcpuCpuid(supported, 0, 1, { brand: "x".repeat(60) });
  assert.equal(brandOf(long), "x".repeat(47));
  const odd = vcpuCpuid(supported, 0, 1, { brand: "Intel\u00ae Xeon\u2122\tCPU" });
  assert.equal(brandOf(odd), "Intel? Xeon??CPU");
});

Deno.test("no brand leaves where the maximum extended leaf stops short of them, or no brand", () => {
  const low = vcpuCpuid([entry(0x8000_0000, 0x8000_0001)], 0, 1, { brand: "CPU" });
  assert.ok(!low.some((e) => e.function >= 0x8000_0002 && e.function <= 0x8000_0004));
  const none = vcpuCpuid([entry(0x8000_0000, 0x8000_0008)], 0, 1);
  assert.ok(!none.some((e) => e.function === 0x8000_0002));
});
