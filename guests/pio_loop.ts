import { buildGuest, debugExitStatus, type Guest } from "./guest.ts";
import { exitWith, GDT, LONG_MODE_ENTRY } from "./_snippets.ts";

/** Port {@linkcode pioLoop} writes to; no device claims it, so each write is a bare exit. */
export const PIO_LOOP_PORT = 0x500;
/** Debug-exit value of {@linkcode pioLoop}. */
export const PIO_LOOP_EXIT_VALUE = 0x17;
/** Process exit code of {@linkcode pioLoop}: 47. */
export const PIO_LOOP_EXIT_CODE = debugExitStatus(PIO_LOOP_EXIT_VALUE);

/**
 * Exit-path benchmark: enters long mode (so it is valid on PVM hosts, which only run 64-bit
 * guests faithfully), then executes exactly `n` times `out dx, al` with DX =
 * {@linkcode PIO_LOOP_PORT} and AL = 0, then debug-exits with 0x17 (exit code 47). No serial
 * output. `n` is a 32-bit immediate in the image.
 *
 * @example
 * ```ts
 * import { pioLoop } from "./pio_loop.ts";
 * const g = pioLoop(100_000); // expect 100000 KVM_EXIT_IO writes to port 0x500
 * ```
 */
export function pioLoop(n: number): Guest {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RangeError(`Iteration count must be an integer in [0, 2^32): ${n}`);
  }
  return buildGuest(`
${LONG_MODE_ENTRY}
bits 64
main64:
    mov ecx, ${n}
    mov dx, 0x${PIO_LOOP_PORT.toString(16)}
    xor eax, eax
    test ecx, ecx
    jz .done
.again:
    out dx, al
    dec ecx
    jnz .again
.done:
    ${exitWith(PIO_LOOP_EXIT_VALUE)}
${GDT}
`);
}
