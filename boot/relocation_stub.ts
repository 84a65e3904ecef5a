/**
 * A kernel's KASLR relocations applied in the guest, by a few instructions
 * that run before its entry, as Linux's own decompressor applies them
 * (`handle_relocations` in arch/x86/boot/compressed/misc.c) when QEMU or a
 * bootloader boots the bzImage. The VMM only writes the relocation lists
 * into free guest RAM, the stub and its parameters below 64 KiB (which
 * Linux never hands out: CONFIG_X86_RESERVE_LOW), and starts vCPU 0 at
 * the stub with RBX pointing at the parameters and RSI at the zero page,
 * which it leaves alone; it then jumps to the kernel's 64-bit entry.
 *
 * Why in the guest: a Debian kernel has ~222,000 entries, one read-modify-
 * write each. In JavaScript, cold (it runs once a boot), they took ~30 ms
 * natively and 250-400 ms under the nested host's emulator, on the path to
 * the first KVM_RUN; the loop below runs at the guest's native speed
 * (~1 ms), where the kernel then touches the same pages anyway. A bad entry
 * (one outside the kernel) can only touch guest RAM: the stub stops with
 * `ud2` (no IDT yet: a triple fault, which the VMM reports as a crash).
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import { type KernelRelocations, relocationOrigin } from "./unpacked_kernel.ts";

/** Guest address of the stub (free low memory, see boot/layout.ts). */
export const RELOCATION_STUB_START = 0x1000;
/** Guest address of its parameter block (RBX at entry). */
export const RELOCATION_PARAMS_START = 0x1100;
/** Bytes of the parameter block. */
export const RELOCATION_PARAMS_SIZE = 72;

/** One relocation loop: `op` on each entry of the list `count` counts. */
function loop(name: string, count: string, next: string, last: string, op: string): string {
  return `
${name}:
    test ${count}, ${count}
    jz ${next}
    mov eax, [rdi]        ; the entry: the low 32 bits of a kernel virtual address
    add rdi, 4
    add rax, r15          ; its guest-physical address where the kernel was placed
    cmp rax, r8
    jb bad
    cmp rax, ${last}
    ja bad
    ${op}
    dec ${count}
    jmp ${name}`;
}

/**
 * The stub's source, for guests/asm.ts (64-bit, position-independent). The
 * parameter block at RBX: +0 the kernel's entry, +8 the lists' address (the
 * 32-bit list, the inverse 32-bit list, the 64-bit list, 32-bit words each),
 * +16 what turns an entry into a guest address, +24 the kernel's first
 * byte, +32 / +40 the last address a 32-bit / 64-bit field may start at,
 * +48 the virtual offset, +56 / +60 / +64 the three lists' lengths (32-bit).
 */
export const RELOCATION_STUB_SOURCE = `
bits 64
    mov rdi, [rbx + 8]
    mov r15, [rbx + 16]
    mov r8, [rbx + 24]
    mov r9, [rbx + 32]
    mov r10, [rbx + 40]
    mov rdx, [rbx + 48]
    mov r11d, [rbx + 56]
    mov r12d, [rbx + 60]
    mov r13d, [rbx + 64]
${loop("add32", "r11d", "sub32", "r9", "add [rax], edx")}
${loop("sub32", "r12d", "add64", "r9", "sub [rax], edx")}
${loop("add64", "r13d", "done", "r10", "add [rax], rdx")}
done:
    mov rax, [rbx]
    push rax
    ret
bad:
    db 0x0f, 0x0b         ; ud2
`;

/**
 * {@link RELOCATION_STUB_SOURCE} assembled (boot/relocation_stub_test.ts
 * checks these bytes against guests/asm.ts and runs them under QEMU), so a
 * boot loads no assembler.
 */
export const RELOCATION_STUB_CODE: Uint8Array = Uint8Array.from(
  (
    "488b7b084c8b7b104c8b43184c8b4b204c8b5328488b5330448b5b38448b633c448b6b40" +
    "4585db741a8b074883c7044c01f84c39c072504c39c8774b011041ffcbebe1" +
    "4585e4741a8b074883c7044c01f84c39c072314c39c8772c291041ffccebe1" +
    "4585ed741b8b074883c7044c01f84c39c072124c39d0770d48011041ffcdebe0" +
    "488b0350c30f0b"
  ).match(/../g)!,
  (h) => parseInt(h, 16),
);

/** What the stub needs: where the kernel went and its relocations. */
export interface RelocationStubOptions {
  /** The kernel's 64-bit entry (guest address), where the stub jumps. */
  readonly entry: number;
  /** Where the kernel was placed (guest address of its first byte). */
  readonly base: number;
  /** Bytes of the kernel's memory image from base (the fields relocated lie inside). */
  readonly memSize: number;
  /** The kernel's linked physical base (its ELF's first segment). */
  readonly linkedBase: number;
  /** The virtual offset chosen (a multiple of 2 MiB, not 0). */
  readonly virtualOffset: number;
  /** The lists. */
  readonly relocations: KernelRelocations;
  /** Guest address for the lists (4-byte aligned, {@link relocationTableBytes} long). */
  readonly table: number;
}

/**
 * Bytes the relocation lists take in guest RAM.
 *
 * @param r the lists
 * @returns their size
 */
export function relocationTableBytes(r: KernelRelocations): number {
  return 4 * (r.relocs32.length + r.relocsInverse32.length + r.relocs64.length);
}

/**
 * Writes the lists, the stub and its parameters into guest RAM.
 *
 * @param mem guest RAM
 * @param o where the kernel went, its relocations, where the lists go
 * @returns vCPU 0's entry registers: RIP (the stub) and RBX (its parameters)
 * @example
 * ```ts ignore
 * const { rip, rbx } = writeRelocationStub(mem, { entry, base, memSize, linkedBase, virtualOffset, relocations, table });
 * ```
 */
export function writeRelocationStub(
  mem: GuestMemory,
  o: RelocationStubOptions,
): { rip: number; rbx: number } {
  const r = o.relocations;
  let at = o.table;
  for (const list of [r.relocs32, r.relocsInverse32, r.relocs64]) {
    mem.write(at, new Uint8Array(list.buffer, list.byteOffset, list.byteLength));
    at += list.byteLength;
  }
  mem.write(RELOCATION_STUB_START, RELOCATION_STUB_CODE);
  const p = mem.slice(RELOCATION_PARAMS_START, RELOCATION_PARAMS_SIZE);
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  // The stub reads an entry zero-extended (e + 2^32 for the negative
  // Int32Array element e) and adds the bias: base + e - relocationOrigin.
  const bias = BigInt(o.base) - BigInt(relocationOrigin(o.linkedBase)) - (1n << 32n);
  v.setBigUint64(0, BigInt(o.entry), true);
  v.setBigUint64(8, BigInt(o.table), true);
  v.setBigUint64(16, BigInt.asUintN(64, bias), true);
  v.setBigUint64(24, BigInt(o.base), true);
  v.setBigUint64(32, BigInt(o.base + o.memSize - 4), true);
  v.setBigUint64(40, BigInt(o.base + o.memSize - 8), true);
  v.setBigUint64(48, BigInt(o.virtualOffset), true);
  v.setUint32(56, r.relocs32.length, true);
  v.setUint32(60, r.relocsInverse32.length, true);
  v.setUint32(64, r.relocs64.length, true);
  v.setUint32(68, 0, true);
  return { rip: RELOCATION_STUB_START, rbx: RELOCATION_PARAMS_START };
}
