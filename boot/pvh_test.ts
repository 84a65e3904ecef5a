import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import { debianPackage } from "../tests/fixtures/debian.ts";
import { makeElf, note } from "./_test_images.ts";
import { buildE820 } from "./e820.ts";
import { PT_LOAD, PT_NOTE, XEN_ELFNOTE_PHYS32_ENTRY } from "./elf.ts";
import { KernelLoaderError } from "./kernel_loader_error.ts";
import { loadPvhKernel } from "./pvh_loader.ts";
import { PVH_INFO_START, PVH_MEMMAP_START, PVH_MODLIST_START } from "./layout.ts";
import {
  HVM_MEMMAP_TABLE_ENTRY,
  HVM_MODLIST_ENTRY,
  HVM_START_INFO,
  writePvhStartInfo,
  XEN_HVM_START_MAGIC_VALUE,
} from "./pvh.ts";

Deno.test("hvm_start_info layouts match Xen's start_info.h (Debian libxen-dev)", async () => {
  const root = await debianPackage("libxen-dev");
  const dir = await Deno.makeTempDir();
  try {
    const lines: string[] = [];
    for (const k of Object.keys(HVM_START_INFO)) {
      if (k !== "size") {
        lines.push(`P("hvm_start_info.${k}", offsetof(struct hvm_start_info, ${k}));`);
      }
    }
    for (const k of ["addr", "size", "type", "reserved"]) {
      lines.push(`P("memmap.${k}", offsetof(struct hvm_memmap_table_entry, ${k}));`);
    }
    for (const k of ["paddr", "size", "cmdline_paddr", "reserved"]) {
      lines.push(`P("modlist.${k}", offsetof(struct hvm_modlist_entry, ${k}));`);
    }
    const src = `#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/arch-x86/hvm/start_info.h>
#define P(n, v) printf("%s %zu\\n", n, (size_t)(v))
int main(void) {
  ${lines.join("\n  ")}
  P("hvm_start_info.size", sizeof(struct hvm_start_info));
  P("memmap.sizeof", sizeof(struct hvm_memmap_table_entry));
  P("modlist.sizeof", sizeof(struct hvm_modlist_entry));
  P("magic", XEN_HVM_START_MAGIC_VALUE);
  return 0;
}
`;
    await Deno.writeTextFile(`${dir}/p.c`, src);
    const cc = await new Deno.Command("cc", {
      args: ["-I", `${root}/usr/include`, "-o", `${dir}/p`, `${dir}/p.c`],
      stderr: "piped",
    }).output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const out = new TextDecoder().decode((await new Deno.Command(`${dir}/p`).output()).stdout);
    const got = new Map(out.trim().split("\n").map((l) => l.split(" ") as [string, string]));
    const want = new Map<string, number>();
    for (const [k, v] of Object.entries(HVM_START_INFO)) want.set(`hvm_start_info.${k}`, v);
    for (const [k, v] of Object.entries(HVM_MEMMAP_TABLE_ENTRY)) want.set(`memmap.${k}`, v);
    for (const [k, v] of Object.entries(HVM_MODLIST_ENTRY)) want.set(`modlist.${k}`, v);
    want.set("magic", XEN_HVM_START_MAGIC_VALUE);
    assert.equal(got.size, want.size);
    for (const [k, v] of want) assert.equal(Number(got.get(k)), v, k);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writePvhStartInfo writes the start info, memory map and initrd module", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(64 << 20));
  const e820 = buildE820(mem);
  const addr = writePvhStartInfo(mem, {
    e820,
    cmdlineAddr: 0x20000,
    rsdp: 0xe0000,
    initrd: { addr: 0x3c00000, size: 0x1234 },
  });
  assert.equal(addr, PVH_INFO_START);
  assert.equal(mem.readU32(addr), XEN_HVM_START_MAGIC_VALUE);
  assert.equal(mem.readU32(addr + HVM_START_INFO.version), 1);
  assert.equal(mem.readU32(addr + HVM_START_INFO.nr_modules), 1);
  assert.equal(mem.readU64(addr + HVM_START_INFO.modlist_paddr), BigInt(PVH_MODLIST_START));
  assert.equal(mem.readU64(addr + HVM_START_INFO.cmdline_paddr), 0x20000n);
  assert.equal(mem.readU64(addr + HVM_START_INFO.rsdp_paddr), 0xe0000n);
  assert.equal(mem.readU64(addr + HVM_START_INFO.memmap_paddr), BigInt(PVH_MEMMAP_START));
  assert.equal(mem.readU32(addr + HVM_START_INFO.memmap_entries), e820.length);
  e820.forEach((e, i) => {
    const p = PVH_MEMMAP_START + i * 24;
    assert.deepEqual(
      [Number(mem.readU64(p)), Number(mem.readU64(p + 8)), mem.readU32(p + 16)],
      [e.addr, e.size, e.type],
    );
  });
  assert.equal(mem.readU64(PVH_MODLIST_START), 0x3c00000n);
  assert.equal(mem.readU64(PVH_MODLIST_START + 8), 0x1234n);
  // The tables do not run into the zero page.
  assert.ok(PVH_MEMMAP_START + 128 * 24 <= PVH_MODLIST_START);
  assert.ok(PVH_MODLIST_START + 32 <= 0x7000);
  const many = Array.from({ length: 129 }, (_, i) => ({ addr: i * 8192, size: 4096, type: 1 }));
  assert.throws(() => writePvhStartInfo(mem, { e820: many }), RangeError);
});

Deno.test("loadPvhKernel loads the ELF and writes cmdline, initrd and start info", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(32 << 20));
  const pvh = new Uint8Array(4);
  new DataView(pvh.buffer).setUint32(0, 0x100040, true);
  const vmlinux = makeElf(0x100000n, [
    { type: PT_LOAD, paddr: 0x100000, data: new Uint8Array(256).fill(0xcc), memsz: 0x200000 },
    { type: PT_NOTE, paddr: 0, data: note("Xen", XEN_ELFNOTE_PHYS32_ENTRY, pvh) },
  ]);
  const initrd = new Uint8Array(0x3000).fill(9);
  const r = loadPvhKernel(mem, vmlinux, { cmdline: "console=ttyS0", initrd, rsdp: 0xe0000 });
  assert.equal(r.entry, 0x100040);
  assert.equal(r.startInfo, PVH_INFO_START);
  assert.equal(r.kernelEnd, 0x300000);
  assert.deepEqual(r.initrd, { addr: (32 << 20) - 0x3000, size: 0x3000 });
  assert.equal(mem.readU8(r.initrd!.addr), 9);
  assert.equal(new TextDecoder().decode(mem.slice(r.cmdlineAddr, 14)), "console=ttyS0\0");
  assert.equal(mem.readU32(PVH_INFO_START + HVM_START_INFO.nr_modules), 1);
  assert.equal(mem.readU64(PVH_INFO_START + HVM_START_INFO.rsdp_paddr), 0xe0000n);
  const plain = makeElf(0x100000n, [{ type: PT_LOAD, paddr: 0x100000, data: new Uint8Array(8) }]);
  assert.throws(
    () => loadPvhKernel(mem, plain, { cmdline: "" }),
    (e: unknown) => e instanceof KernelLoaderError && /no PVH entry/.test(e.message),
  );
  assert.throws(
    () => loadPvhKernel(mem, vmlinux, { cmdline: "", initrd: new Uint8Array(30 << 20) }),
    (e: unknown) => e instanceof KernelLoaderError && /^Initrd too big/.test(e.message),
  );
});
