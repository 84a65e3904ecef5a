/**
 * A guest for `--reboot` tests: a PVH ELF "kernel" (so `main.ts --kernel`
 * boots it like a vmlinux) that dirties most of guest RAM, prints `R` on
 * COM1 and resets the machine through the i8042 (0xfe to port 0x64), over
 * and over under `--reboot`.
 *
 * @module
 */
import { assemble } from "./asm.ts";
import { COM1_PORT } from "./guest.ts";

/** Where the image is loaded (the PVH entry is its first byte). */
export const RESET_LOOP_LOAD_ADDR = 0x100000;
/** The first byte the guest dirties (above the image and the boot structures). */
export const RESET_LOOP_DIRTY_START = 0x200000;
/** What the guest prints once per boot. */
export const RESET_LOOP_MARK = "R";

/** One ELF note: the PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY). */
function pvhNote(entry: number): Uint8Array {
  const note = new Uint8Array(20);
  const v = new DataView(note.buffer);
  v.setUint32(0, 4, true); // namesz
  v.setUint32(4, 4, true); // descsz
  v.setUint32(8, 18, true); // type
  note.set([0x58, 0x65, 0x6e, 0], 12); // "Xen"
  v.setUint32(16, entry, true);
  return note;
}

/**
 * Builds the reset-loop guest for a machine with `memoryBytes` of RAM: it
 * writes every byte from {@link RESET_LOOP_DIRTY_START} to 2 MiB below the
 * end of RAM (each boot, fresh RAM: every page is touched again).
 *
 * @param memoryBytes guest RAM (at least 8 MiB, below 3 GiB)
 * @returns an ELF64 image with a PVH entry note
 * @example
 * ```ts
 * import { resetLoopGuest } from "./reset_loop.ts";
 * const elf = resetLoopGuest(32 << 20);
 * ```
 */
export function resetLoopGuest(memoryBytes: number): Uint8Array<ArrayBuffer> {
  if (memoryBytes < 8 << 20 || memoryBytes > 3 * 2 ** 30) {
    throw new RangeError("The reset-loop guest needs 8 MiB to 3 GiB of RAM");
  }
  const dirtyEnd = memoryBytes - (2 << 20);
  const { code } = assemble(
    `
bits 32
start:
    cld
    mov edi, ${RESET_LOOP_DIRTY_START}
    mov ecx, ${(dirtyEnd - RESET_LOOP_DIRTY_START) / 4}
    mov eax, 0x5a5aa5a5
    rep stosd
    mov dx, ${COM1_PORT}
    mov al, ${RESET_LOOP_MARK.charCodeAt(0)}
    out dx, al
    mov al, 10
    out dx, al
    mov al, 0xfe
    out 0x64, al
spin:
    hlt
    jmp spin
`,
    { origin: RESET_LOOP_LOAD_ADDR, bits: 32 },
  );
  const EHDR = 64;
  const PHDR = 56;
  const noteOff = EHDR + 2 * PHDR;
  const codeOff = 0x200;
  const note = pvhNote(RESET_LOOP_LOAD_ADDR);
  const image = new Uint8Array(codeOff + code.length);
  const v = new DataView(image.buffer);
  image.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0); // ELF64, little-endian, version 1
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 62, true); // EM_X86_64
  v.setUint32(20, 1, true); // e_version
  v.setBigUint64(24, BigInt(RESET_LOOP_LOAD_ADDR), true); // e_entry
  v.setBigUint64(32, BigInt(EHDR), true); // e_phoff
  v.setUint16(52, EHDR, true); // e_ehsize
  v.setUint16(54, PHDR, true); // e_phentsize
  v.setUint16(56, 2, true); // e_phnum
  const phdr = (i: number, type: number, off: number, addr: number, size: number) => {
    const p = EHDR + i * PHDR;
    v.setUint32(p, type, true);
    v.setUint32(p + 4, 5, true); // PF_R | PF_X
    v.setBigUint64(p + 8, BigInt(off), true);
    v.setBigUint64(p + 16, BigInt(addr), true);
    v.setBigUint64(p + 24, BigInt(addr), true);
    v.setBigUint64(p + 32, BigInt(size), true);
    v.setBigUint64(p + 40, BigInt(size), true);
    v.setBigUint64(p + 48, 4n, true);
  };
  phdr(0, 1, codeOff, RESET_LOOP_LOAD_ADDR, code.length); // PT_LOAD
  phdr(1, 4, noteOff, 0, note.length); // PT_NOTE
  image.set(note, noteOff);
  image.set(code, codeOff);
  return image;
}
