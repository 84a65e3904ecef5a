/**
 * A guest for the PCI configuration ports (a PVH ELF, guests/pvh_elf.ts):
 * it reads the ids of the host bridge (00:00.0) and the vendor of 00:01.0 through
 * CONFIG_ADDRESS (0xcf8) and CONFIG_DATA (0xcfc), alternately, many times,
 * so a read that used a stale address would see the other device. Then it
 * prints `P` (or `F` at the first wrong value) on COM1, writes a reset to
 * 0xcf9 (in the same dword as 0xcf8) and triple-faults: the reset must win
 * over the crash, as on hardware, where the write resets at once.
 *
 * @module
 */
import { assemble } from "./asm.ts";
import { COM1_PORT } from "./guest.ts";
import { pvhElf } from "./pvh_elf.ts";

/** The vendor the guest expects at 00:01.0: a virtio function (the CLI's default rng is one). */
const VIRTIO_VENDOR = 0x1af4;
/** Where the image is loaded and entered. */
export const PCI_CONFIG_LOOP_LOAD_ADDR = 0x100000;
/** What the guest prints when every read was right. */
export const PCI_CONFIG_LOOP_PASS = "P";
/** What it prints at the first wrong read. */
export const PCI_CONFIG_LOOP_FAIL = "F";

/**
 * Builds the guest.
 *
 * @param rounds pairs of reads (host bridge, then slot 1)
 * @returns an ELF64 image with a PVH entry note
 * @example
 * ```ts
 * import { pciConfigLoopGuest } from "./pci_config_loop.ts";
 * const elf = pciConfigLoopGuest(1000);
 * ```
 */
export function pciConfigLoopGuest(rounds: number): Uint8Array<ArrayBuffer> {
  const { code } = assemble(
    `
bits 32
start:
    mov ecx, ${rounds}
again:
    mov dx, 0xcf8
    mov eax, 0x80000000
    out dx, eax
    mov dx, 0xcfc
    in eax, dx
    cmp eax, 0x29c08086
    jne fail
    mov dx, 0xcf8
    mov eax, 0x80000800
    out dx, eax
    mov dx, 0xcfc
    in eax, dx
    and eax, 0xffff
    cmp eax, ${VIRTIO_VENDOR}
    jne fail
    dec ecx
    jnz again
    mov dx, ${COM1_PORT}
    mov al, ${PCI_CONFIG_LOOP_PASS.charCodeAt(0)}
    out dx, al
    mov al, 10
    out dx, al
    mov dx, 0xcf9
    mov al, 6
    out dx, al
    lidt [no_idt]
    int 3
fail:
    mov dx, ${COM1_PORT}
    mov al, ${PCI_CONFIG_LOOP_FAIL.charCodeAt(0)}
    out dx, al
    mov al, 10
    out dx, al
spin:
    cli
    hlt
    jmp spin
no_idt:
    dw 0
    dd 0
`,
    { origin: PCI_CONFIG_LOOP_LOAD_ADDR, bits: 32 },
  );
  return pvhElf(code, PCI_CONFIG_LOOP_LOAD_ADDR);
}
