import { buildGuest, debugExitStatus, type Guest } from "./guest.ts";
import { exitWith, PRINT16 } from "./_snippets.ts";

/** What {@linkcode realModeHello} writes to COM1. */
export const REAL_MODE_HELLO_OUTPUT = "Hello from real mode\n";
/** Debug-exit value of {@linkcode realModeHello}. */
export const REAL_MODE_HELLO_EXIT_VALUE = 0x10;
/** Process exit code of {@linkcode realModeHello}: 33. */
export const REAL_MODE_HELLO_EXIT_CODE = debugExitStatus(REAL_MODE_HELLO_EXIT_VALUE);

/**
 * The smallest guest: in real mode, prints {@linkcode REAL_MODE_HELLO_OUTPUT} on COM1 and
 * debug-exits with 0x10 (exit code 33). Needs one vCPU and no memory beyond the image.
 *
 * @example
 * ```ts
 * import { realModeHello } from "./real_mode_hello.ts";
 * const g = realModeHello(); // load g.code at g.loadAddr, start at CS:IP = 0:g.entry
 * ```
 */
export function realModeHello(): Guest {
  return buildGuest(`
bits 16
start:
    cli
    mov si, message
    call print16
    ${exitWith(REAL_MODE_HELLO_EXIT_VALUE)}
${PRINT16}
message:
    db "Hello from real mode", 10, 0
`);
}
