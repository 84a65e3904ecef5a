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
import { pvhElf } from "./pvh_elf.ts";

/** Where the image is loaded (the PVH entry is its first byte). */
export const RESET_LOOP_LOAD_ADDR = 0x100000;
/** The first byte the guest dirties (above the image and the boot structures). */
export const RESET_LOOP_DIRTY_START = 0x200000;
/** What the guest prints once per boot. */
export const RESET_LOOP_MARK = "R";

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
  return pvhElf(code, RESET_LOOP_LOAD_ADDR);
}
