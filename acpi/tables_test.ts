import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import { ensureAptPackages } from "../tests/fixtures/debian.ts";
import { FADT, PM1A_CNT_BLK, PM1A_EVT_BLK, RESET_REG_PORT } from "./fadt.ts";
import { type AcpiOptions, buildAcpiTables } from "./tables.ts";

function sum(b: Uint8Array): number {
  let s = 0;
  for (const x of b) s = (s + x) & 0xff;
  return s;
}

function build(cpus: number, options: Partial<AcpiOptions> = {}) {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(2 << 20));
  const acpi = buildAcpiTables(mem, { cpus, ...options });
  const table = (sig: string) => mem.slice(acpi.tables[sig].addr, acpi.tables[sig].size);
  return { mem, acpi, table };
}

Deno.test("ACPI tables are linked, checksummed and in the BIOS area", () => {
  const { mem, acpi, table } = build(4);
  assert.equal(acpi.rsdp, 0xe0000);
  assert.ok(acpi.range.addr === 0xe0000 && acpi.range.addr + acpi.range.size <= 0x100000);
  const rsdp = table("RSDP");
  assert.equal(new TextDecoder().decode(rsdp.subarray(0, 8)), "RSD PTR ");
  assert.equal(sum(rsdp.subarray(0, 20)), 0);
  assert.equal(sum(rsdp), 0);
  assert.equal(rsdp[15], 2);
  const rv = new DataView(rsdp.buffer, rsdp.byteOffset, 36);
  assert.equal(rv.getUint32(16, true), acpi.tables.RSDT.addr);
  assert.equal(Number(rv.getBigUint64(24, true)), acpi.tables.XSDT.addr);
  for (const sig of ["XSDT", "RSDT", "FACP", "DSDT", "APIC"]) {
    const t = table(sig);
    assert.equal(new TextDecoder().decode(t.subarray(0, 4)), sig);
    assert.equal(new DataView(t.buffer, t.byteOffset).getUint32(4, true), t.length);
    assert.equal(sum(t), 0, `${sig} checksum`);
  }
  assert.equal(acpi.tables.FACS.addr % 64, 0);
  assert.equal(mem.readU32(acpi.tables.FACS.addr + 4), 64);
  // XSDT -> FADT, MADT.
  const x = acpi.tables.XSDT.addr;
  assert.equal(Number(mem.readU64(x + 36)), acpi.tables.FACP.addr);
  assert.equal(Number(mem.readU64(x + 44)), acpi.tables.APIC.addr);
  // FADT fields the PM device model relies on.
  const f = acpi.tables.FACP.addr;
  assert.equal(mem.readU8(f + 8), 6);
  assert.equal(mem.readU32(f + FADT.facs), acpi.tables.FACS.addr);
  assert.equal(mem.readU32(f + FADT.dsdt), acpi.tables.DSDT.addr);
  assert.equal(Number(mem.readU64(f + FADT.Xdsdt)), acpi.tables.DSDT.addr);
  assert.equal(mem.readU16(f + FADT.sci_interrupt), 9);
  assert.equal(mem.readU32(f + FADT.smi_command), 0);
  assert.equal(mem.readU32(f + FADT.pm1a_event_block), PM1A_EVT_BLK);
  assert.equal(mem.readU32(f + FADT.pm1a_control_block), PM1A_CNT_BLK);
  assert.equal(mem.readU8(f + FADT.pm1_event_length), 4);
  assert.equal(mem.readU8(f + FADT.pm1_control_length), 2);
  assert.equal(mem.readU32(f + 76), 0, "no PM timer");
  assert.equal(mem.readU16(f + FADT.boot_flags) & 3, 3, "legacy devices + 8042");
  const flags = mem.readU32(f + FADT.flags);
  assert.ok(flags & (1 << 10), "RESET_REG_SUP");
  assert.equal(flags & (1 << 20), 0, "not hardware-reduced");
  assert.equal(flags & (1 << 4), 0, "a fixed power button (powerdown reaches acpid)");
  assert.ok(flags & (1 << 5), "no fixed sleep button");
  assert.equal(mem.readU8(f + FADT.reset_register), 1, "reset register in I/O space");
  assert.equal(Number(mem.readU64(f + FADT.reset_register + 4)), RESET_REG_PORT);
  assert.equal(mem.readU8(f + FADT.reset_value), 6);
  assert.equal(Number(mem.readU64(f + FADT.Xpm1a_control_block + 4)), PM1A_CNT_BLK);
  // MADT: 4 local APICs with ids 0..3, then the IOAPIC.
  const m = acpi.tables.APIC.addr;
  assert.equal(mem.readU32(m + 36), 0xfee00000);
  for (let i = 0; i < 4; i++) {
    const e = m + 44 + 8 * i;
    assert.deepEqual([mem.readU8(e), mem.readU8(e + 1), mem.readU8(e + 3)], [0, 8, i]);
    assert.equal(mem.readU32(e + 4), 1);
  }
  const io = m + 44 + 32;
  assert.equal(mem.readU8(io), 1);
  assert.equal(mem.readU32(io + 4), 0xfec00000);
  assert.equal(mem.readU32(io + 8), 0);
});

Deno.test("buildAcpiTables rejects bad vCPU counts and areas that do not fit", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(2 << 20));
  assert.throws(() => buildAcpiTables(mem, { cpus: 0 }), /Invalid vCPU count 0/);
  assert.throws(() => buildAcpiTables(mem, { cpus: 256 }), /Invalid vCPU count 256/);
  assert.throws(
    () => buildAcpiTables(mem, { cpus: 1, base: 0xe0000, limit: 0xe0100 }),
    /do not fit below 0xe0100/,
  );
  assert.throws(() => buildAcpiTables(mem, { cpus: 1, base: 0xe0001 }), /Invalid ACPI base/);
  const small = GuestMemory.fromBuffer(new ArrayBuffer(0x80000));
  assert.throws(() => buildAcpiTables(small, { cpus: 1 }), /not guest RAM/);
  // 255 vCPUs still fit the BIOS area.
  const big = buildAcpiTables(mem, { cpus: 255 });
  assert.ok(big.range.addr + big.range.size <= 0x100000);
});

async function run(cmd: string, args: string[], cwd: string) {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text };
}

Deno.test("iasl disassembles every table without complaint and acpiexec evaluates the DSDT", async () => {
  await ensureAptPackages(["acpica-tools"]);
  const { acpi, table } = build(2, {
    pciIrqRoutes: [{ slot: 1, pin: 0, gsi: 16 }, { slot: 2, pin: 1, gsi: 17 }],
    pciMmio64: { start: 0x80_0000_0000n, end: 0xff_ffff_ffffn },
    serial: [{ port: 0x3f8, irq: 4 }, { port: 0x2f8, irq: 3 }],
  });
  const dir = await Deno.makeTempDir({ prefix: "denovmm-acpi-" });
  try {
    const files: string[] = [];
    for (const sig of ["FACP", "FACS", "DSDT", "APIC", "XSDT", "RSDT"]) {
      const file = `${sig.toLowerCase()}.dat`;
      await Deno.writeFile(`${dir}/${file}`, table(sig));
      files.push(file);
      const r = await run("iasl", ["-d", file], dir);
      assert.equal(r.code, 0, r.text);
      assert.doesNotMatch(r.text, /warning|error|incorrect|invalid/i, `${sig}: ${r.text}`);
      const dsl = await Deno.readTextFile(`${dir}/${sig.toLowerCase()}.dsl`);
      assert.doesNotMatch(dsl, /incorrect|invalid|unknown/i, `${sig} disassembly`);
    }
    const dsdt = await Deno.readTextFile(`${dir}/dsdt.dsl`);
    assert.match(dsdt, /Name \(\\_S5, Package \(0x04\)/);
    assert.match(dsdt, /Device \(PCI0\)/);
    assert.match(dsdt, /EisaId \("PNP0A03"\)/);
    assert.match(dsdt, /WordBusNumber \(ResourceProducer, MinFixed, MaxFixed, PosDecode,/);
    assert.match(dsdt, /0xC0000000,\s+\/\/ Range Minimum\s+0xFEBFFFFF,/);
    assert.match(dsdt, /EisaId \("PNP0501"\)/);
    assert.match(dsdt, /IRQNoFlags \(\)\s+\{4\}/);
    assert.match(dsdt, /IRQNoFlags \(\)\s+\{3\}/);
    assert.match(dsdt, /Device \(COM2\)/);
    assert.match(dsdt, /0x0000008000000000,\s+\/\/ Range Minimum\s+0x000000FFFFFFFFFF,/);
    assert.match(dsdt, /Name \(_PRT, Package \(0x02\)/);
    assert.match(dsdt, /0x0002FFFF,\s+One,\s+Zero,\s+0x11\s+\}/);
    const fadt = await Deno.readTextFile(`${dir}/facp.dsl`);
    assert.match(fadt, /Reset Register Supported \(V2\) : 1/);
    assert.match(fadt, /PM1A Control Block Address : 00000604/);
    assert.match(fadt, /8042 Present on ports 60\/64 \(V2\) : 1/);
    const madt = await Deno.readTextFile(`${dir}/apic.dsl`);
    assert.equal(madt.match(/\[Processor Local APIC\]/g)?.length, 2);
    assert.match(
      madt,
      /Source : 09\s+\[[^\]]+\]\s+Interrupt : 00000009\s+\[[^\]]+\]\s+Flags \(decoded below\) : 000D/,
    );
    assert.match(madt, /Interrupt Input LINT : 01/);

    const ex = await run("acpiexec", [
      "-b",
      "evaluate \\_S5; evaluate \\_SB.PCI0._HID; evaluate \\_SB.COM1._CRS; evaluate \\_SB.PCI0._PRT",
      ...files.filter((f) => f !== "xsdt.dat" && f !== "rsdt.dat"),
    ], dir);
    assert.equal(ex.code, 0, ex.text);
    assert.match(
      ex.text,
      /Evaluation of \\_S5 returned[^\n]*\n\s+\[Package\] Contains 4 Elements:\n\s+\[Integer\] = 0000000000000005\n\s+\[Integer\] = 0000000000000005/,
    );
    assert.match(ex.text, /\[Integer\] = 00000000030AD041/);
    assert.match(ex.text, /Evaluation of \\_SB.COM1._CRS returned/);
    assert.match(
      ex.text,
      /Evaluation of \\_SB.PCI0._PRT returned[^\n]*\n\s+\[Package\] Contains 2 Elements/,
    );
    assert.doesNotMatch(ex.text, /Incorrect checksum|AE_AML|AE_NOT_FOUND/);
    assert.ok(acpi.rsdp > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
