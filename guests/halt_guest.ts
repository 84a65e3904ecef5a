import { buildGuest, debugExitStatus, type Guest } from "./guest.ts";
import { exitWith, PRINT16 } from "./_snippets.ts";

/** What {@linkcode haltGuest} writes to COM1 before the HLT. */
export const HALT_GUEST_BEFORE = "Halting\n";
/** What {@linkcode haltGuest} writes to COM1 after being resumed. */
export const HALT_GUEST_AFTER = "Resumed after HLT\n";
/** Complete COM1 output of {@linkcode haltGuest}. */
export const HALT_GUEST_OUTPUT = HALT_GUEST_BEFORE + HALT_GUEST_AFTER;
/** Debug-exit value of {@linkcode haltGuest}. */
export const HALT_GUEST_EXIT_VALUE = 0x14;
/** Process exit code of {@linkcode haltGuest}: 41. */
export const HALT_GUEST_EXIT_CODE = debugExitStatus(HALT_GUEST_EXIT_VALUE);

/**
 * In real mode with interrupts off: prints {@linkcode HALT_GUEST_BEFORE}, executes one HLT,
 * prints {@linkcode HALT_GUEST_AFTER} and debug-exits with 0x14 (exit code 41).
 *
 * Without an in-kernel irqchip the HLT reaches the VMM as KVM_EXIT_HLT with RIP already past
 * the instruction; the VMM is expected to count it and simply re-enter KVM_RUN (a VMM that
 * stops on HLT instead shows only the first line and never exits with 41). Exactly one HLT
 * exit happens before the debug exit.
 *
 * @example
 * ```ts
 * import { haltGuest } from "./halt_guest.ts";
 * const g = haltGuest();
 * ```
 */
export function haltGuest(): Guest {
  return buildGuest(`
bits 16
start:
    cli
    mov si, before
    call print16
    hlt
    mov si, after
    call print16
    ${exitWith(HALT_GUEST_EXIT_VALUE)}
${PRINT16}
before:
    db "Halting", 10, 0
after:
    db "Resumed after HLT", 10, 0
`);
}
