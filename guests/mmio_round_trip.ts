import { buildGuest, debugExitStatus, type Guest, TEST_MMIO_BASE } from "./guest.ts";
import { exitWith, GDT, LONG_MODE_ENTRY, PRINT64 } from "./_snippets.ts";

/** COM1 output of {@linkcode mmioRoundTrip} when the echo register behaves. */
export const MMIO_OK_OUTPUT = "MMIO OK\n";
/** COM1 output of {@linkcode mmioRoundTrip} when a read-back is wrong. */
export const MMIO_BAD_OUTPUT = "MMIO BAD\n";
/** Debug-exit value on success. */
export const MMIO_OK_EXIT_VALUE = 0x12;
/** Debug-exit value on a wrong read-back. */
export const MMIO_BAD_EXIT_VALUE = 0x13;
/** Process exit code on success: 37. */
export const MMIO_OK_EXIT_CODE = debugExitStatus(MMIO_OK_EXIT_VALUE);
/** Process exit code on a wrong read-back: 39. */
export const MMIO_BAD_EXIT_CODE = debugExitStatus(MMIO_BAD_EXIT_VALUE);
/** The values written to the echo register, in order. */
export const MMIO_TEST_VALUES: readonly number[] = [0x12345678, 0xa5a55a5a];

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * Exercises the test VMM's echo device from long mode: for each of
 * {@linkcode MMIO_TEST_VALUES}, a 32-bit store of V to 0xd0000000 (`mov [rbx], eax`, then
 * `mov dword [rbx], imm32`) and a 32-bit load from 0xd0000004 (`mov ecx, [rbx+4]`) that must
 * return V ^ 0xffffffff. Prints {@linkcode MMIO_OK_OUTPUT} and exits 37, or prints
 * {@linkcode MMIO_BAD_OUTPUT} and exits 39. Four MMIO exits in all; one vCPU.
 *
 * @example
 * ```ts
 * import { mmioRoundTrip } from "./mmio_round_trip.ts";
 * const g = mmioRoundTrip();
 * ```
 */
export function mmioRoundTrip(): Guest {
  const [v1, v2] = MMIO_TEST_VALUES;
  return buildGuest(`
${LONG_MODE_ENTRY}
bits 64
main64:
    mov rbx, ${hex(TEST_MMIO_BASE)}
    mov eax, ${hex(v1)}
    mov [rbx], eax
    mov ecx, [rbx+4]
    cmp ecx, ${hex((v1 ^ 0xffffffff) >>> 0)}
    jne .bad
    mov dword [rbx], ${hex(v2)}
    mov ecx, [rbx+4]
    cmp ecx, ${hex((v2 ^ 0xffffffff) >>> 0)}
    jne .bad
    mov rsi, ok_message
    call print64
    ${exitWith(MMIO_OK_EXIT_VALUE)}
.bad:
    mov rsi, bad_message
    call print64
    ${exitWith(MMIO_BAD_EXIT_VALUE)}
${PRINT64}
ok_message:
    db "MMIO OK", 10, 0
bad_message:
    db "MMIO BAD", 10, 0
${GDT}
`);
}
