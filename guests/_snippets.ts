/**
 * Assembly fragments shared by the guests: serial printing, debug exit, the switch from real
 * mode to long mode, and its GDT.
 *
 * @module
 */
import { COM1_PORT, DEBUG_EXIT_PORT, GUEST_PAGE_TABLES } from "./guest.ts";

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Writes `value` to the debug-exit port, then halts forever in case the VMM goes on. */
export function exitWith(value: number): string {
  return `
    mov al, ${hex(value)}
    out ${hex(DEBUG_EXIT_PORT)}, al
.exit_hang${value}:
    cli
    hlt
    jmp .exit_hang${value}`;
}

/** print16: writes the NUL-terminated string at DS:SI to COM1. Clobbers al, dx, si. */
export const PRINT16 = `
bits 16
print16:
    mov dx, ${hex(COM1_PORT)}
.next:
    mov al, [si]
    test al, al
    jz .done
    out dx, al
    inc si
    jmp .next
.done:
    ret`;

/**
 * print64: writes the NUL-terminated string at RSI to COM1 (clobbers al, dx, rsi).
 * hex64: writes RAX as 16 lowercase hex digits (clobbers rax, rcx, dx, r8).
 */
export const PRINT64 = `
bits 64
print64:
    mov dx, ${hex(COM1_PORT)}
.next:
    mov al, [rsi]
    test al, al
    jz .done
    out dx, al
    inc rsi
    jmp .next
.done:
    ret
hex64:
    mov r8, rax
    mov dx, ${hex(COM1_PORT)}
    mov ecx, 16
.digit:
    rol r8, 4
    mov eax, r8d
    and eax, 0xf
    cmp al, 10
    jb .decimal
    add al, 'a' - '0' - 10
.decimal:
    add al, '0'
    out dx, al
    dec ecx
    jnz .digit
    ret`;

const PML4 = GUEST_PAGE_TABLES;
const PDPT = PML4 + 0x1000;
const PD = PML4 + 0x2000;

/**
 * Real mode → 32-bit protected mode → long mode, entered at \`start\`; continues at the
 * guest's \`main64\` label in 64-bit mode with flat segments, RSP = the initial SP, and the first
 * 4 GiB identity-mapped with 2 MiB pages (so the test MMIO window at 0xd0000000 is reachable).
 * Requires {@linkcode GDT} in the image.
 */
export const LONG_MODE_ENTRY = `
bits 16
start:
    cli
    lgdt [gdtr]
    mov eax, cr0
    or eax, 1                     ; CR0.PE
    mov cr0, eax
    jmp dword 0x08:pm32           ; load CS with the 32-bit code segment
bits 32
pm32:
    mov ax, 0x10                  ; flat data segment
    mov ds, ax
    mov es, ax
    mov ss, ax
    and esp, 0xffff
    cld                           ; zero PML4, PDPT and four page directories
    mov edi, ${hex(PML4)}
    xor eax, eax
    mov ecx, 6 * 1024
    rep stosd
    mov dword [${hex(PML4)}], ${hex(PDPT)} + 3   ; present | writable
    mov edi, ${hex(PDPT)}
    mov eax, ${hex(PD)} + 3
    mov ecx, 4
.pdpt:
    mov [edi], eax
    add eax, 0x1000
    add edi, 8
    loop .pdpt
    mov edi, ${hex(PD)}
    mov eax, 0x83                 ; present | writable | 2 MiB page, physical 0
    mov ecx, 4 * 512
.pd:
    mov [edi], eax
    add eax, 0x200000
    add edi, 8
    loop .pd
    mov eax, cr4
    or eax, 0x20                  ; CR4.PAE
    mov cr4, eax
    mov eax, ${hex(PML4)}
    mov cr3, eax
    mov ecx, 0xc0000080           ; MSR_EFER
    rdmsr
    or eax, 0x100                 ; EFER.LME
    wrmsr
    mov eax, cr0
    or eax, 0x80000000            ; CR0.PG: long mode becomes active
    mov cr0, eax
    jmp 0x18:lm64                 ; load CS with the 64-bit code segment
bits 64
lm64:
    mov esp, esp                  ; zero-extend the stack pointer into RSP
    jmp main64`;

/** GDT: 0x08 32-bit code, 0x10 flat data, 0x18 64-bit code; all base 0, limit 4 GiB. */
export const GDT = `
align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff         ; G D P S code exec/read
    dq 0x00cf92000000ffff         ; G B P S data read/write
    dq 0x00af9a000000ffff         ; G L P S code exec/read
gdt_end:
gdtr:
    dw gdt_end - gdt - 1
    dd gdt`;
