import { buildGuest, debugExitStatus, type Guest } from "./guest.ts";
import { exitWith, GDT, LONG_MODE_ENTRY, PRINT64 } from "./_snippets.ts";

/** The 64-bit value {@linkcode longModeHello} computes from two 32-bit halves and prints. */
export const LONG_MODE_HELLO_VALUE = 0xdeadbeef_cafef00dn;
/** What {@linkcode longModeHello} writes to COM1. */
export const LONG_MODE_HELLO_OUTPUT = "Hello from long mode\nrax=0xdeadbeefcafef00d\n";
/** Debug-exit value of {@linkcode longModeHello}. */
export const LONG_MODE_HELLO_EXIT_VALUE = 0x11;
/** Process exit code of {@linkcode longModeHello}: 35. */
export const LONG_MODE_HELLO_EXIT_CODE = debugExitStatus(LONG_MODE_HELLO_EXIT_VALUE);

/**
 * Switches real → protected → long mode (GDT, PAE page tables at 0x8000..0xdfff mapping 4 GiB,
 * EFER.LME, CR0.PG, far jumps), then prints {@linkcode LONG_MODE_HELLO_OUTPUT}: the second
 * line is `(0xdeadbeef << 32) | 0xcafef00d` computed in r9/rax, which only 64-bit code can
 * produce, printed digit by digit with 64-bit rotates. Debug-exits with 0x11 (exit code 35).
 * One vCPU; needs guest RAM up to 0xe000.
 *
 * @example
 * ```ts
 * import { longModeHello } from "./long_mode_hello.ts";
 * const g = longModeHello();
 * ```
 */
export function longModeHello(): Guest {
  return buildGuest(`
${LONG_MODE_ENTRY}
bits 64
main64:
    mov rsi, message
    call print64
    mov rax, 0xcafef00d
    mov r9, 0xdeadbeef
    shl r9, 32
    or rax, r9
    call hex64
    mov al, 10
    out dx, al
    ${exitWith(LONG_MODE_HELLO_EXIT_VALUE)}
${PRINT64}
message:
    db "Hello from long mode", 10, "rax=0x", 0
${GDT}
`);
}
