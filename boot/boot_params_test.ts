import assert from "node:assert/strict";
import * as bp from "./boot_params.ts";

/** Compiles and runs a C program printing "name value" lines; returns them as a map. */
async function probe(body: string): Promise<Map<string, number>> {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-bootparam-" });
  try {
    const src = `#include <stdio.h>
#include <stddef.h>
#include <asm/bootparam.h>
#include <asm/e820.h>
#define OFF(t, m) printf("%s %zu\\n", #m, offsetof(t, m))
#define SZ(t, m) printf("%s.size %zu\\n", #m, sizeof(((t *)0)->m))
#define VAL(x) printf("%s %lu\\n", #x, (unsigned long)(x))
int main(void) {
${body}
  return 0;
}
`;
    await Deno.writeTextFile(`${dir}/probe.c`, src);
    const cc = await new Deno.Command("cc", {
      args: ["-o", `${dir}/probe`, `${dir}/probe.c`],
      stderr: "piped",
    }).output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const run = await new Deno.Command(`${dir}/probe`, { stdout: "piped" }).output();
    assert.equal(run.code, 0);
    const out = new Map<string, number>();
    for (const line of new TextDecoder().decode(run.stdout).trim().split("\n")) {
      const [k, v] = line.split(" ");
      out.set(k, Number(v));
    }
    return out;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function fieldLines(prefix: string, fields: Record<string, bp.StructField>): string {
  return Object.keys(fields)
    .map((k) => `  OFF(struct boot_params, ${prefix}${k}); SZ(struct boot_params, ${prefix}${k});`)
    .join("\n");
}

Deno.test("boot_params layout matches asm/bootparam.h", async () => {
  const e820 = Object.keys(bp.BOOT_E820_ENTRY)
    .map((k) => `  OFF(struct boot_e820_entry, ${k}); SZ(struct boot_e820_entry, ${k});`)
    .join("\n");
  const got = await probe(
    [
      fieldLines("", bp.BOOT_PARAMS),
      e820,
      '  printf("boot_params.size %zu\\n", sizeof(struct boot_params));',
      '  printf("setup_header.size %zu\\n", sizeof(struct setup_header));',
      '  printf("boot_e820_entry.size %zu\\n", sizeof(struct boot_e820_entry));',
      "  VAL(E820_MAX_ENTRIES_ZEROPAGE); VAL(LOADED_HIGH); VAL(CAN_USE_HEAP);",
      "  VAL(XLF_KERNEL_64); VAL(XLF_CAN_BE_LOADED_ABOVE_4G);",
      "  VAL(E820_RAM); VAL(E820_RESERVED); VAL(E820_ACPI); VAL(E820_NVS); VAL(E820_UNUSABLE);",
      "  VAL(E820MAP); VAL(E820NR);",
    ].join("\n"),
  );
  const want = new Map<string, number>();
  for (const [k, v] of Object.entries(bp.BOOT_PARAMS)) {
    want.set(k, v.offset);
    want.set(`${k}.size`, v.size);
  }
  for (const [k, v] of Object.entries(bp.BOOT_E820_ENTRY)) {
    want.set(k, v.offset);
    want.set(`${k}.size`, v.size);
  }
  want.set("boot_params.size", bp.BOOT_PARAMS_SIZE);
  want.set("setup_header.size", bp.SETUP_HEADER_SIZE);
  want.set("boot_e820_entry.size", bp.BOOT_E820_ENTRY_SIZE);
  want.set("E820_MAX_ENTRIES_ZEROPAGE", bp.E820_MAX_ENTRIES_ZEROPAGE);
  want.set("LOADED_HIGH", bp.LOADED_HIGH);
  want.set("CAN_USE_HEAP", bp.CAN_USE_HEAP);
  want.set("XLF_KERNEL_64", bp.XLF_KERNEL_64);
  want.set("XLF_CAN_BE_LOADED_ABOVE_4G", bp.XLF_CAN_BE_LOADED_ABOVE_4G);
  want.set("E820_RAM", bp.E820_RAM);
  want.set("E820_RESERVED", bp.E820_RESERVED);
  want.set("E820_ACPI", bp.E820_ACPI);
  want.set("E820_NVS", bp.E820_NVS);
  want.set("E820_UNUSABLE", bp.E820_UNUSABLE);
  want.set("E820MAP", bp.BOOT_PARAMS.e820_table.offset);
  want.set("E820NR", bp.BOOT_PARAMS.e820_entries.offset);
  for (const [k, v] of want) {
    assert.equal(got.get(k), v, `${k}: header says ${got.get(k)}, boot_params.ts says ${v}`);
  }
});

Deno.test("setup_header fields match asm/bootparam.h", async () => {
  const got = await probe(fieldLines("hdr.", bp.SETUP_HEADER));
  for (const [k, v] of Object.entries(bp.SETUP_HEADER)) {
    assert.equal(got.get(`hdr.${k}`), v.offset, `hdr.${k} offset`);
    assert.equal(got.get(`hdr.${k}.size`), v.size, `hdr.${k} size`);
  }
});

Deno.test("getField/setField round-trip and reject values that do not fit", () => {
  const v = new DataView(new ArrayBuffer(bp.BOOT_PARAMS_SIZE));
  bp.setField(v, 0, bp.SETUP_HEADER.pref_address, 0x1_2345_6789);
  assert.equal(bp.getField(v, 0, bp.SETUP_HEADER.pref_address), 0x1_2345_6789);
  bp.setField(v, 0, bp.SETUP_HEADER.version, 0x20f);
  assert.equal(bp.getField(v, 0, bp.SETUP_HEADER.version), 0x20f);
  assert.throws(() => bp.setField(v, 0, bp.SETUP_HEADER.version, 0x10000), RangeError);
  assert.throws(() => bp.setField(v, 0, bp.SETUP_HEADER.loadflags, -1), RangeError);
  v.setBigUint64(0x258, 0xffff_ffff_ffff_ffffn, true);
  assert.throws(() => bp.getField(v, 0, bp.SETUP_HEADER.pref_address), RangeError);
});
