/**
 * Test helper: disassembles bytes with binutils' objdump (Intel syntax) to cross-check the
 * assembler against an independent decoder.
 *
 * @module
 */
import type { Bits } from "./asm.ts";

/** One decoded instruction. */
export interface Decoded {
  address: number;
  size: number;
  /** objdump's text with runs of spaces collapsed, e.g. `mov dx,0x3f8`. */
  text: string;
}

const ARCH: Record<Bits, string> = { 16: "i8086", 32: "i386", 64: "i386:x86-64" };

/** True when objdump can be run, so tests can skip cleanly without binutils. */
export function hasObjdump(): boolean {
  try {
    return new Deno.Command("objdump", { args: ["--version"], stdout: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

/**
 * Decodes `code` (loaded at `origin`) from `start` up to `stop` (absolute addresses) in the given
 * mode.
 */
export function objdump(
  code: Uint8Array,
  origin: number,
  options: { bits: Bits; start?: number; stop?: number },
): Decoded[] {
  const file = Deno.makeTempFileSync({ prefix: "denovmm-guest-", suffix: ".bin" });
  try {
    Deno.writeFileSync(file, code);
    const args = [
      "-D",
      "-b",
      "binary",
      "-m",
      ARCH[options.bits],
      "-M",
      "intel",
      "--insn-width=16",
      `--adjust-vma=0x${origin.toString(16)}`,
      `--start-address=0x${(options.start ?? origin).toString(16)}`,
      `--stop-address=0x${(options.stop ?? origin + code.length).toString(16)}`,
      file,
    ];
    const out = new Deno.Command("objdump", { args, stdout: "piped", stderr: "piped" })
      .outputSync();
    if (!out.success) throw new Error(`objdump failed: ${new TextDecoder().decode(out.stderr)}`);
    const decoded: Decoded[] = [];
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const m = /^\s*([0-9a-f]+):\t([0-9a-f ]+)\t(.*)$/.exec(line);
      if (m === null) continue;
      decoded.push({
        address: parseInt(m[1], 16),
        size: m[2].trim().split(/\s+/).length,
        text: m[3].replace(/\s+/g, " ").trim(),
      });
    }
    return decoded;
  } finally {
    Deno.removeSync(file);
  }
}
