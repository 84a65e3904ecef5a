import assert from "node:assert/strict";
import type { AsmInstruction } from "./asm.ts";
import { hasObjdump, objdump } from "./_objdump.ts";
import {
  debugExitStatus,
  type Guest,
  GUEST_LOAD_ADDR,
  GUEST_PAGE_TABLES,
  GUEST_STACK_STRIDE,
  GUEST_STACK_TOP,
  haltGuest,
  longModeHello,
  mmioRoundTrip,
  PIO_LOOP_PORT,
  pioLoop,
  realModeHello,
  twoVcpus,
} from "./mod.ts";

const JCC_CANONICAL: Record<string, string> = {
  jz: "je",
  jnz: "jne",
  jc: "jb",
  jnae: "jb",
  jnc: "jae",
  jnb: "jae",
  jna: "jbe",
  jnbe: "ja",
  jpe: "jp",
  jpo: "jnp",
  jnge: "jl",
  jnl: "jge",
  jng: "jle",
  jnle: "jg",
};

/** The mnemonic objdump should print for an instruction we emitted. */
function expectedMnemonic(insn: AsmInstruction): string {
  return insn.mnemonic.split(" ").map((w) =>
    JCC_CANONICAL[w] ?? w.replace(/^(stos|movs)[bwdq]$/, "$1")
  )
    .join(" ");
}

/** objdump's mnemonic without the operand-size suffixes it adds in some modes. */
function decodedMnemonic(text: string): string {
  const words = text.split(" ");
  const prefixes = words[0] === "lock" || words[0] === "rep" ? 2 : 1;
  return words.slice(0, prefixes).join(" ").replace(/^movabs$/, "mov").replace(
    /^(lgdt|lidt)[wd]$/,
    "$1",
  );
}

/**
 * Disassembles each run of same-mode instructions of a guest and checks that every
 * instruction decodes at its address, with its length and mnemonic, and nothing is `(bad)`.
 */
function crossCheck(guest: Guest): number {
  const runs: AsmInstruction[][] = [];
  for (const insn of guest.instructions) {
    const run = runs.at(-1);
    const last = run?.at(-1);
    if (run && last && last.bits === insn.bits && last.address + last.size === insn.address) {
      run.push(insn);
    } else runs.push([insn]);
  }
  let checked = 0;
  for (const run of runs) {
    const last = run.at(-1)!;
    const decoded = objdump(guest.code, guest.loadAddr, {
      bits: run[0].bits,
      start: run[0].address,
      stop: last.address + last.size,
    });
    assert.equal(decoded.length, run.length, `instruction count in run at ${run[0].address}`);
    run.forEach((insn, i) => {
      const d = decoded[i];
      const where = `line ${insn.line} '${insn.text.trim()}' (bits ${insn.bits}) -> '${d.text}'`;
      assert.equal(d.address, insn.address, where);
      assert.equal(d.size, insn.size, where);
      assert.ok(!d.text.includes("(bad)"), where);
      assert.equal(decodedMnemonic(d.text), expectedMnemonic(insn), where);
      checked++;
    });
  }
  return checked;
}

function bytesOf(guest: Guest, label: string, length: number): Uint8Array {
  const off = guest.labels[label] - guest.loadAddr;
  return guest.code.slice(off, off + length);
}

function containsText(guest: Guest, text: string): boolean {
  const hay = new TextDecoder("latin1").decode(guest.code);
  return hay.includes(text);
}

const ALL: [string, () => Guest][] = [
  ["realModeHello", realModeHello],
  ["longModeHello", longModeHello],
  ["mmioRoundTrip", mmioRoundTrip],
  ["haltGuest", haltGuest],
  ["twoVcpus", () => twoVcpus()],
  ["pioLoop", () => pioLoop(1000)],
];

for (const [name, build] of ALL) {
  Deno.test({
    name: `${name} decodes with objdump as assembled`,
    ignore: !hasObjdump(),
    fn() {
      const guest = build();
      assert.ok(crossCheck(guest) > 10);
    },
  });

  Deno.test(`${name} fits the entry contract's memory map`, () => {
    const guest = build();
    assert.equal(guest.loadAddr, GUEST_LOAD_ADDR);
    assert.equal(guest.entry, guest.labels.start);
    assert.ok(guest.entry >= guest.loadAddr && guest.entry < 0x10000);
    const end = guest.loadAddr + guest.code.length;
    assert.ok(end <= GUEST_STACK_TOP - 4 * GUEST_STACK_STRIDE, `image ends at ${end}`);
    assert.ok(end <= GUEST_PAGE_TABLES);
    assert.equal(guest.instructions[0].address, guest.entry);
    assert.equal(guest.instructions[0].bits, 16);
  });
}

Deno.test("debugExitStatus follows isa-debug-exit", () => {
  assert.equal(debugExitStatus(0x10), 33);
  assert.equal(debugExitStatus(0), 1);
  assert.equal(debugExitStatus(0x7f), 255);
});

Deno.test("guests carry their messages and exit values", () => {
  assert.ok(containsText(realModeHello(), "Hello from real mode\n\0"));
  assert.ok(containsText(longModeHello(), "Hello from long mode\nrax=0x\0"));
  assert.ok(containsText(mmioRoundTrip(), "MMIO OK\n\0"));
  assert.ok(containsText(mmioRoundTrip(), "MMIO BAD\n\0"));
  assert.ok(containsText(haltGuest(), "Resumed after HLT\n\0"));
  assert.ok(containsText(twoVcpus(), " ok\n\0"));
  // mov al, 0x10 ; out 0xf4, al
  assert.ok(containsText(realModeHello(), "\xb0\x10\xe6\xf4"));
  assert.ok(containsText(pioLoop(5), "\xb0\x17\xe6\xf4"));
});

Deno.test("long-mode GDT has flat 32-bit code, data and 64-bit code descriptors", () => {
  const guest = longModeHello();
  const gdt = new DataView(bytesOf(guest, "gdt", 32).buffer);
  assert.equal(gdt.getBigUint64(0, true), 0n);
  assert.equal(gdt.getBigUint64(8, true), 0x00cf9a000000ffffn);
  assert.equal(gdt.getBigUint64(16, true), 0x00cf92000000ffffn);
  assert.equal(gdt.getBigUint64(24, true), 0x00af9a000000ffffn);
  assert.equal(guest.labels.gdt % 8, 0);
  const gdtr = new DataView(bytesOf(guest, "gdtr", 6).buffer);
  assert.equal(gdtr.getUint16(0, true), 31);
  assert.equal(gdtr.getUint32(2, true), guest.labels.gdt);
});

Deno.test("pioLoop embeds its count and port", () => {
  const guest = pioLoop(0x12345678);
  const i = guest.instructions.find((x) => x.bits === 64 && x.text.includes("mov ecx"))!;
  const imm = new DataView(guest.code.buffer, i.address - guest.loadAddr + 1, 4).getUint32(0, true);
  assert.equal(imm, 0x12345678);
  assert.ok(guest.instructions.some((x) => x.text.includes(`0x${PIO_LOOP_PORT.toString(16)}`)));
  assert.throws(() => pioLoop(-1), RangeError);
  assert.throws(() => pioLoop(2 ** 32), RangeError);
  assert.throws(() => twoVcpus({ timeoutTicks: 0 }), RangeError);
});

Deno.test("the demo image the CLI boots is the assembler's demo guest, byte for byte", async () => {
  const { demoGuest } = await import("./demo.ts");
  const { demoImage, demoImageLines, DEMO_MIN_RAM } = await import("./demo_image.ts");
  const { GUEST_MIN_RAM } = await import("./guest.ts");
  const g = demoGuest();
  const image = demoImage();
  assert.equal(image.loadAddr, g.loadAddr);
  assert.equal(image.entry, g.entry);
  assert.equal(DEMO_MIN_RAM, GUEST_MIN_RAM);
  // On a mismatch the message carries the lines to paste into demo_image.ts.
  assert.deepEqual(
    image.code,
    g.code,
    `guests/demo_image.ts is stale; its lines now:\n${demoImageLines(g.code)}`,
  );
  assert.notEqual(image.code, demoImage().code, "each call returns its own copy");
});
