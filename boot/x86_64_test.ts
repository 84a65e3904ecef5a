import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import { BOOT_GDT_START, PD_START, PDPT_START, PML4_START, ZERO_PAGE_START } from "./layout.ts";
import { gdtEntry, setupLongMode, setupPvh } from "./x86_64.ts";

const MiB = 1 << 20;

/** Walks the guest page tables like the MMU, for a 4-level 2 MiB/1 GiB mapping. */
function translate(mem: GuestMemory, cr3: number, va: number): number | undefined {
  const idx = (shift: number) => Math.floor(va / 2 ** shift) % 512;
  const pml4e = mem.readU64(cr3 + idx(39) * 8);
  if (!(pml4e & 1n)) return undefined;
  const pdpte = mem.readU64(Number(pml4e & 0xffffffffff000n) + idx(30) * 8);
  if (!(pdpte & 1n)) return undefined;
  if (pdpte & 0x80n) return Number(pdpte & 0xfffffc0000000n) + (va % 2 ** 30);
  const pde = mem.readU64(Number(pdpte & 0xffffffffff000n) + idx(21) * 8);
  if (!(pde & 1n) || !(pde & 0x80n)) return undefined;
  return Number(pde & 0xfffffffe00000n) + (va % 2 ** 21);
}

Deno.test("gdtEntry encodes the usual flat descriptors", () => {
  assert.equal(gdtEntry(0xa09b, 0, 0xfffff), 0x00af9b000000ffffn);
  assert.equal(gdtEntry(0xc093, 0, 0xfffff), 0x00cf93000000ffffn);
  assert.equal(gdtEntry(0xc09b, 0, 0xfffff), 0x00cf9b000000ffffn);
  assert.equal(gdtEntry(0x008b, 0x12345678, 0x67), 0x12008b345678_0067n);
});

Deno.test("setupLongMode writes GDT and identity page tables and returns 64-bit state", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(4 * MiB));
  const s = setupLongMode(mem, { entry: 0x1000200, bootParams: ZERO_PAGE_START });
  assert.equal(s.regs.rip, 0x1000200);
  assert.equal(s.regs.rsi, ZERO_PAGE_START);
  assert.equal(s.regs.rsp, 0x8ff0);
  assert.equal(s.regs.rflags, 2);
  const { sregs } = s;
  assert.equal(sregs.cr3, PML4_START);
  assert.equal(sregs.cr0 & 0x80000001, 0x80000001 | 0, "PE and PG");
  assert.equal(sregs.cr4 & 0x20, 0x20, "PAE");
  assert.equal(sregs.efer, 0x500, "LME | LMA");
  assert.deepEqual(
    [sregs.cs.selector, sregs.cs.l, sregs.cs.db, sregs.cs.type, sregs.cs.s, sregs.cs.present],
    [0x10, 1, 0, 0xb, 1, 1],
  );
  for (const seg of [sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss]) {
    assert.deepEqual([seg.selector, seg.type, seg.db, seg.l, seg.limit], [
      0x18,
      3,
      1,
      0,
      0xffffffff,
    ]);
  }
  assert.deepEqual([sregs.tr.selector, sregs.tr.type, sregs.tr.s, sregs.tr.limit], [
    0x20,
    11,
    0,
    0x67,
  ]);
  assert.deepEqual(sregs.gdt, { base: BOOT_GDT_START, limit: 39 });
  // The GDT in memory agrees with the segment registers.
  assert.equal(mem.readU64(BOOT_GDT_START + 0x10), 0x00af9b000000ffffn);
  assert.equal(mem.readU64(BOOT_GDT_START + 0x18), 0x00cf93000000ffffn);
  assert.equal(mem.readU64(BOOT_GDT_START), 0n);
  // Identity mapping of the first 4 GiB, nothing above.
  for (const va of [0, 0x7000, 0x1000200, 0x3fff_ffff, 0x4000_0000, 0xfee0_0000, 0xffff_ffff]) {
    assert.equal(translate(mem, sregs.cr3, va), va, `0x${va.toString(16)}`);
  }
  assert.equal(translate(mem, sregs.cr3, 0x1_0000_0000), undefined);
  assert.equal(mem.readU64(PDPT_START) & 0xfffff000n, BigInt(PD_START));
});

Deno.test("setupPvh returns flat 32-bit protected mode with EBX = start info", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(MiB));
  const s = setupPvh(mem, { entry: 0x1000850, startInfo: 0x6000 });
  assert.equal(s.regs.rip, 0x1000850);
  assert.equal(s.regs.rbx, 0x6000);
  assert.equal(s.sregs.cr0 & 0x80000001, 1, "PE without PG");
  assert.equal(s.sregs.cr4, 0);
  assert.equal(s.sregs.efer, 0);
  const cs = s.sregs.cs;
  assert.deepEqual([cs.selector, cs.db, cs.l, cs.base, cs.limit, cs.type], [
    8,
    1,
    0,
    0,
    0xffffffff,
    0xb,
  ]);
  assert.equal(mem.readU64(BOOT_GDT_START + 8), 0x00cf9b000000ffffn);
  assert.throws(() => setupPvh(mem, { entry: 2 ** 32, startInfo: 0x6000 }), RangeError);
});
