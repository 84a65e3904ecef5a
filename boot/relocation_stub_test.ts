import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import { assemble } from "../guests/asm.ts";
import { buildGuest, debugExitStatus } from "../guests/guest.ts";
import { exitWith, GDT, LONG_MODE_ENTRY } from "../guests/_snippets.ts";
import { hasQemu, runInQemu } from "../guests/_qemu.ts";
import {
  RELOCATION_PARAMS_SIZE,
  RELOCATION_PARAMS_START,
  RELOCATION_STUB_CODE,
  RELOCATION_STUB_SOURCE,
  RELOCATION_STUB_START,
  writeRelocationStub,
} from "./relocation_stub.ts";
import { runRelocationStubModel } from "./testdata/relocation_stub_model.ts";

Deno.test("the relocation stub's bytes are its source assembled, and fit below its parameters", () => {
  assert.deepEqual(assemble(RELOCATION_STUB_SOURCE, { bits: 64 }).code, RELOCATION_STUB_CODE);
  assert.ok(RELOCATION_STUB_START + RELOCATION_STUB_CODE.length <= RELOCATION_PARAMS_START);
  assert.ok(RELOCATION_PARAMS_START + RELOCATION_PARAMS_SIZE <= 0x6000, "below the PVH start info");
});

/** A kernel at 2 MiB linked at 16 MiB, moved up 6 MiB virtually. */
const KERNEL = 0x20_0000, LINKED = 0x100_0000, OFFSET = 0x60_0000, SIZE = 0x1000;
/** An entry for a field at `offset` in the kernel: the low half of its virtual address. */
const entry = (offset: number) => (0x8000_0000 + LINKED + offset) | 0;
const LISTS = {
  relocs32: Int32Array.of(entry(0x10), entry(0x14)),
  relocsInverse32: Int32Array.of(entry(0x20)),
  relocs64: Int32Array.of(entry(0x30), entry(0x40)),
};

Deno.test("the stub's parameters, applied as its code does, relocate like the loader", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(4 << 20));
  mem.writeU32(KERNEL + 0x10, 0x8100_0100);
  mem.writeU32(KERNEL + 0x14, 0xffff_fff0);
  mem.writeU32(KERNEL + 0x20, 0x5000);
  mem.writeU64(KERNEL + 0x30, 0xffff_ffff_8100_0200n);
  mem.writeU64(KERNEL + 0x40, 0x1_ffff_ff00n);
  const regs = writeRelocationStub(mem, {
    entry: KERNEL + 0x200,
    base: KERNEL,
    memSize: SIZE,
    linkedBase: LINKED,
    virtualOffset: OFFSET,
    relocations: LISTS,
    table: 0x30_0000,
  });
  assert.deepEqual(regs, { rip: RELOCATION_STUB_START, rbx: RELOCATION_PARAMS_START });
  assert.equal(runRelocationStubModel(mem, regs.rbx), KERNEL + 0x200);
  assert.equal(mem.readU32(KERNEL + 0x10), 0x8160_0100);
  assert.equal(mem.readU32(KERNEL + 0x14), 0x005f_fff0, "32-bit fields wrap");
  assert.equal(mem.readU32(KERNEL + 0x20), (0x5000 - OFFSET) >>> 0);
  assert.equal(mem.readU64(KERNEL + 0x30), 0xffff_ffff_8160_0200n);
  assert.equal(mem.readU64(KERNEL + 0x40), 0x2_005f_ff00n, "64-bit fields carry");
  // An entry past the kernel's end stops it.
  writeRelocationStub(mem, {
    entry: KERNEL,
    base: KERNEL,
    memSize: SIZE,
    linkedBase: LINKED,
    virtualOffset: OFFSET,
    relocations: { ...LISTS, relocs64: Int32Array.of(entry(SIZE - 4)) },
    table: 0x30_0000,
  });
  assert.throws(() => runRelocationStubModel(mem, RELOCATION_PARAMS_START), /ud2/);
});

/**
 * A guest that reaches long mode, lays out a kernel and the stub's
 * parameters as the loader does, runs the stub with RSI holding a marker,
 * and checks at the "kernel's entry" what the stub did.
 */
function stubGuest(lists: typeof LISTS): ReturnType<typeof buildGuest> {
  const hex = (n: number) => `0x${n.toString(16)}`;
  const bytes = (b: Uint8Array) => Array.from(b, hex).join(", ");
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(4 << 20));
  writeRelocationStub(mem, {
    entry: 0, // patched by the guest: its check label
    base: KERNEL,
    memSize: SIZE,
    linkedBase: LINKED,
    virtualOffset: OFFSET,
    relocations: lists,
    table: 0x30_0000,
  });
  const params = mem.slice(RELOCATION_PARAMS_START, RELOCATION_PARAMS_SIZE);
  const table = mem.slice(
    0x30_0000,
    4 * (lists.relocs32.length + lists.relocsInverse32.length + lists.relocs64.length),
  );
  const copy = (from: string, to: number, n: number) => `
    mov rsi, ${from}
    mov rdi, ${hex(to)}
    mov rcx, ${n}
    rep movsb`;
  return buildGuest(`
${LONG_MODE_ENTRY}
bits 64
main64:
    ${copy("params", 0x20_000, RELOCATION_PARAMS_SIZE)}
    ${copy("table", 0x30_0000, table.length)}
    ${copy("stub", 0x21_000, RELOCATION_STUB_CODE.length)}
    mov rax, check
    mov [0x20000], rax
    mov dword [${hex(KERNEL + 0x10)}], 0x81000100
    mov dword [${hex(KERNEL + 0x14)}], 0xfffffff0
    mov dword [${hex(KERNEL + 0x20)}], 0x5000
    mov dword [${hex(KERNEL + 0x30)}], 0x81000200
    mov dword [${hex(KERNEL + 0x34)}], 0xffffffff
    mov dword [${hex(KERNEL + 0x40)}], 0xffffff00
    mov dword [${hex(KERNEL + 0x44)}], 1
    mov rbx, 0x20000
    mov rsi, 0x7000
    mov rax, 0x21000
    push rax
    ret
check:
    cmp rsi, 0x7000
    jne bad
    cmp dword [${hex(KERNEL + 0x10)}], 0x81600100
    jne bad
    cmp dword [${hex(KERNEL + 0x14)}], 0x005ffff0
    jne bad
    cmp dword [${hex(KERNEL + 0x20)}], ${hex((0x5000 - OFFSET) >>> 0)}
    jne bad
    cmp dword [${hex(KERNEL + 0x30)}], 0x81600200
    jne bad
    cmp dword [${hex(KERNEL + 0x34)}], 0xffffffff
    jne bad
    cmp dword [${hex(KERNEL + 0x40)}], 0x005fff00
    jne bad
    cmp dword [${hex(KERNEL + 0x44)}], 2
    jne bad
    ${exitWith(0x21)}
bad:
    ${exitWith(0x22)}
params:
    db ${bytes(params)}
table:
    db ${bytes(table)}
stub:
    db ${bytes(RELOCATION_STUB_CODE)}
${GDT}
`);
}

Deno.test({
  name: "qemu: the relocation stub relocates in the guest and jumps to the entry, RSI kept",
  ignore: !hasQemu(),
}, async () => {
  const r = await runInQemu(stubGuest(LISTS));
  assert.equal(r.code, debugExitStatus(0x21));
  // An entry outside the kernel: ud2 with no IDT, a triple fault (QEMU -no-reboot exits).
  const bad = await runInQemu(stubGuest({ ...LISTS, relocs32: Int32Array.of(entry(SIZE)) }));
  assert.notEqual(bad.code, debugExitStatus(0x21));
  assert.notEqual(bad.code, debugExitStatus(0x22));
});
