import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import { debianKernel } from "../tests/fixtures/debian.ts";
import { parseBzImage } from "./bzimage.ts";
import { ELF64, findPvhEntry, loadElf, PT_LOAD, PT_NOTE, XEN_ELFNOTE_PHYS32_ENTRY } from "./elf.ts";
import { KernelLoaderError } from "./kernel_loader_error.ts";
import { makeElf, note } from "./_test_images.ts";

const MiB = 1 << 20;

function rejects(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof KernelLoaderError && re.test(e.message));
}

Deno.test("ELF64 offsets match elf.h", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fields = [
      ["Ehdr", "e_type"],
      ["Ehdr", "e_machine"],
      ["Ehdr", "e_entry"],
      ["Ehdr", "e_phoff"],
      ["Ehdr", "e_phentsize"],
      ["Ehdr", "e_phnum"],
      ["Phdr", "p_type"],
      ["Phdr", "p_offset"],
      ["Phdr", "p_vaddr"],
      ["Phdr", "p_paddr"],
      ["Phdr", "p_filesz"],
      ["Phdr", "p_memsz"],
    ];
    const src = `#include <stdio.h>
#include <stddef.h>
#include <elf.h>
int main(void) {
${fields.map(([t, f]) => `  printf("${f} %zu\\n", offsetof(Elf64_${t}, ${f}));`).join("\n")}
  printf("ehdrSize %zu\\nphdrSize %zu\\n", sizeof(Elf64_Ehdr), sizeof(Elf64_Phdr));
  printf("EI_CLASS %d\\nEI_DATA %d\\n", EI_CLASS, EI_DATA);
  printf("PT_LOAD %d\\nPT_NOTE %d\\nEM_X86_64 %d\\n", PT_LOAD, PT_NOTE, EM_X86_64);
  return 0;
}
`;
    await Deno.writeTextFile(`${dir}/p.c`, src);
    const cc = await new Deno.Command("cc", { args: ["-o", `${dir}/p`, `${dir}/p.c`] }).output();
    assert.equal(cc.code, 0);
    const out = new TextDecoder().decode((await new Deno.Command(`${dir}/p`).output()).stdout);
    const got = new Map(out.trim().split("\n").map((l) => l.split(" ") as [string, string]));
    const want: Record<string, number> = { ...ELF64, PT_LOAD, PT_NOTE, EM_X86_64: 62 };
    for (const [k, v] of got) assert.equal(want[k], Number(v), k);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadElf copies segments to p_paddr, zeroes bss and finds the PVH note", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(8 * MiB));
  mem.fill(0x200000 + 16, 100, 0xee); // stale bytes where bss goes
  const text = new Uint8Array(64).fill(0x90);
  const data = new Uint8Array(16).fill(0x11);
  const pvh = new Uint8Array(4);
  new DataView(pvh.buffer).setUint32(0, 0x100020, true);
  const notes = new Uint8Array([
    ...note("GNU", 3, new Uint8Array(8)),
    ...note("Xen", 6, new TextEncoder().encode("linux\0")),
    ...note("Xen", XEN_ELFNOTE_PHYS32_ENTRY, pvh),
  ]);
  const img = makeElf(0xffffffff81000010n, [
    { type: PT_LOAD, paddr: 0x100000, vaddr: 0xffffffff81000000n, data: text },
    { type: PT_LOAD, paddr: 0x200000, data, memsz: 116 },
    { type: PT_NOTE, paddr: 0x300000, data: notes },
  ]);
  const r = loadElf(mem, img);
  assert.equal(r.entry, 0x100010, "virtual entry translated to physical");
  assert.equal(r.pvhEntry, 0x100020);
  assert.equal(r.kernelAddr, 0x100000);
  assert.equal(r.kernelEnd, 0x200000 + 116);
  assert.deepEqual(mem.slice(0x100000, 64), text);
  assert.deepEqual(mem.slice(0x200000, 16), data);
  assert.ok(mem.slice(0x200000 + 16, 100).every((b) => b === 0));
  assert.equal(mem.readU8(0x300000), 0, "PT_NOTE is not loaded");
  // 8-byte descriptor, and no note at all.
  const pvh8 = new Uint8Array(8);
  pvh8[0] = 0x50;
  const img8 = makeElf(0x100000n, [
    { type: PT_LOAD, paddr: 0x100000, data: text },
    { type: PT_NOTE, paddr: 0, data: note("Xen", 18, pvh8) },
  ]);
  assert.equal(findPvhEntry(img8), 0x50);
  assert.equal(
    findPvhEntry(makeElf(0x100000n, [{ type: PT_LOAD, paddr: 0x100000, data }])),
    undefined,
  );
});

Deno.test("loadElf rejects bad files before writing", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(4 * MiB));
  const seg = { type: PT_LOAD, paddr: 0x100000, data: new Uint8Array(32).fill(1) };
  const good = makeElf(0x100000n, [seg]);
  rejects(() => loadElf(mem, good.subarray(0, 40)), /^Not an ELF kernel: file is only 40/);
  rejects(() => loadElf(mem, new Uint8Array(4096).fill(0x41)), /^Not an ELF kernel: no ELF magic/);
  rejects(() => loadElf(mem, good.subarray(0, good.length - 1)), /^ELF kernel truncated/);
  rejects(() => loadElf(mem, good.subarray(0, 100)), /^ELF kernel truncated/);
  rejects(() => loadElf(mem, makeElf(0x100000n, [seg], 3)), /machine 3, not x86-64/);
  rejects(
    () => loadElf(mem, makeElf(0x100000n, [{ ...seg, paddr: 0x3fffff }])),
    /^Kernel too big for guest RAM/,
  );
  rejects(() => loadElf(mem, makeElf(0x1000n, [{ ...seg, paddr: 0x1000 }])), /below 0x100000/);
  rejects(() => loadElf(mem, makeElf(0x900000n, [seg])), /entry point 0x900000 is outside/);
  rejects(() => loadElf(mem, makeElf(0x100000n, [{ ...seg, memsz: 8 }])), /more file bytes/);
  rejects(() => loadElf(mem, makeElf(0x100000n, [])), /no loadable segments/);
  assert.ok(mem.slice(0, 4 * MiB).every((b) => b === 0));
});

Deno.test("Debian vmlinux (extracted from the amd64 bzImage) loads with its PVH entry", async () => {
  const k = await debianKernel("amd64");
  const image = await Deno.readFile(k.vmlinuz);
  const h = parseBzImage(image);
  const payload = image.subarray(
    h.setupSize + h.payloadOffset,
    h.setupSize + h.payloadOffset + h.payloadLength,
  );
  assert.deepEqual(payload.subarray(0, 6), new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0]));
  const xz = new Deno.Command("xz", {
    args: ["-dc", "--single-stream"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const w = xz.stdin.getWriter();
  const [out] = await Promise.all([xz.output(), w.write(payload).then(() => w.close())]);
  assert.equal(out.code, 0);
  const vmlinux = out.stdout;

  const mem = GuestMemory.fromBuffer(new ArrayBuffer(128 * MiB));
  const r = loadElf(mem, vmlinux);
  assert.equal(r.entry, 0x1000000);
  assert.equal(r.kernelAddr, 0x1000000);
  assert.ok(r.kernelEnd > r.kernelAddr + 32 * MiB && r.kernelEnd <= h.initSize + 0x1000000);
  assert.ok(r.pvhEntry !== undefined && r.pvhEntry > r.kernelAddr && r.pvhEntry < 0x2000000);
  // The first segment's bytes are where p_paddr says.
  const v = new DataView(vmlinux.buffer);
  const ph = Number(v.getBigUint64(32, true));
  const off = Number(v.getBigUint64(ph + 8, true));
  assert.deepEqual(mem.slice(r.kernelAddr, 4096), vmlinux.subarray(off, off + 4096));
  rejects(() => loadElf(GuestMemory.fromBuffer(new ArrayBuffer(32 * MiB)), vmlinux), /too big/);
});
