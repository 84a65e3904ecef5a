/**
 * What boot/relocation_stub.ts's machine code does, in JavaScript, for tests
 * that check what the loader wrote (the code itself runs under QEMU in
 * boot/relocation_stub_test.ts): applies the lists its parameters name.
 *
 * @module
 */
import type { GuestMemory } from "../../memory/guest_memory.ts";

/**
 * Applies the relocations the parameter block at `params` names, as the stub would.
 *
 * @param mem guest RAM
 * @param params the block's guest address (RBX at entry)
 * @returns the kernel's entry the stub would jump to
 * @throws Error where the stub would stop at `ud2` (an entry outside the kernel)
 */
export function runRelocationStubModel(mem: GuestMemory, params: number): number {
  const q = (o: number) => mem.readU64(params + o);
  let table = Number(q(8));
  const bias = q(16), lo = q(24), hi32 = q(32), hi64 = q(40);
  const delta = Number(q(48));
  const counts = [56, 60, 64].map((o) => mem.readU32(params + o));
  counts.forEach((n, list) => {
    for (let i = 0; i < n; i++, table += 4) {
      const p = BigInt.asUintN(64, BigInt(mem.readU32(table)) + bias);
      if (p < lo || p > (list === 2 ? hi64 : hi32)) {
        throw new Error("ud2: an entry outside the kernel");
      }
      const a = Number(p);
      if (list === 0) mem.writeU32(a, (mem.readU32(a) + delta) >>> 0);
      else if (list === 1) mem.writeU32(a, (mem.readU32(a) - delta) >>> 0);
      else mem.writeU64(a, BigInt.asUintN(64, mem.readU64(a) + BigInt(delta)));
    }
  });
  return Number(q(0));
}
