/**
 * Packs flat 32-bit code as an ELF64 with a PVH entry note, so that
 * `main.ts --kernel` boots it like a vmlinux: the test guests that need the
 * whole machine the CLI builds (devices, reset handling) use it.
 *
 * @module
 */

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
 * An ELF64 image that loads `code` at `loadAddr` and enters it there (PVH:
 * 32-bit protected mode, paging off).
 *
 * @param code the guest's instructions, assembled for `loadAddr`
 * @param loadAddr where it is loaded and entered (above 1 MiB)
 * @returns the ELF image
 * @example
 * ```ts
 * import { pvhElf } from "./pvh_elf.ts";
 * const elf = pvhElf(new Uint8Array([0xf4]), 0x100000); // hlt
 * console.log(elf.length > 0x200);
 * ```
 */
export function pvhElf(code: Uint8Array, loadAddr: number): Uint8Array<ArrayBuffer> {
  const EHDR = 64;
  const PHDR = 56;
  const noteOff = EHDR + 2 * PHDR;
  const codeOff = 0x200;
  const note = pvhNote(loadAddr);
  const image = new Uint8Array(codeOff + code.length);
  const v = new DataView(image.buffer);
  image.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0); // ELF64, little-endian, version 1
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, 62, true); // EM_X86_64
  v.setUint32(20, 1, true); // e_version
  v.setBigUint64(24, BigInt(loadAddr), true); // e_entry
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
  phdr(0, 1, codeOff, loadAddr, code.length); // PT_LOAD
  phdr(1, 4, noteOff, 0, note.length); // PT_NOTE
  image.set(note, noteOff);
  image.set(code, codeOff);
  return image;
}
