import { buildGuest, type Guest } from "./guest.ts";
import { GDT, LONG_MODE_ENTRY, PRINT64 } from "./_snippets.ts";

/** ACPI PM1a control port and the S5 (soft-off) value written to it: SLP_TYP=5, SLP_EN. */
export const DEMO_POWEROFF_PORT = 0x604;
/** SLP_EN | SLP_TYP(5) << 10. */
export const DEMO_POWEROFF_VALUE = 0x3400;

/** The banner the demo guest prints. */
export const DEMO_BANNER = [
  "",
  "  +------------------------------------------------------------+",
  "  |  denovmm demo guest                                        |",
  "  |  Hello from 64-bit long mode, on KVM, driven by Deno FFI.  |",
  "  |  This text went out through a 16550A UART on COM1 (0x3f8), |",
  "  |  one port-I/O exit per byte, handled in the vcpu-0 Worker. |",
  "  |  Now powering off through ACPI PM1a_CNT (S5)...            |",
  "  +------------------------------------------------------------+",
  "",
].join("\r\n");

/**
 * The bundled demo guest (`deno run --allow-ffi main.ts` with no --kernel):
 * switches from real mode to long mode, prints {@link DEMO_BANNER} on COM1,
 * and powers off through the ACPI PM1a control register, so the VMM exits 0.
 *
 * @returns the guest image
 * @example
 * ```ts
 * import { demoGuest } from "./demo.ts";
 * const g = demoGuest();
 * ```
 */
export function demoGuest(): Guest {
  const bytes = new TextEncoder().encode(DEMO_BANNER);
  return buildGuest(`
${LONG_MODE_ENTRY}
bits 64
main64:
    mov rsi, banner
    call print64
    mov dx, 0x${DEMO_POWEROFF_PORT.toString(16)}
    mov ax, 0x${DEMO_POWEROFF_VALUE.toString(16)}
    out dx, ax
.off:
    cli
    hlt
    jmp .off
${PRINT64}
banner:
    db ${[...bytes].join(", ")}, 0
${GDT}
`);
}
