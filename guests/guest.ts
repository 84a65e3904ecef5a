/**
 * The shape of a project-authored test guest and the machine contract it relies on.
 *
 * @module
 */
import { type AsmInstruction, assemble } from "./asm.ts";

/** A flat guest image plus what a VMM needs to start it. */
export interface Guest {
  /** Bytes to copy into guest RAM at `loadAddr`. */
  code: Uint8Array;
  /** Guest-physical address of `code[0]`. */
  loadAddr: number;
  /** Real-mode IP (with CS=0) where every vCPU starts. */
  entry: number;
  /** Every label → guest-physical address (locals as `global.local`). */
  labels: Record<string, number>;
  /** Every instruction, for disassembler cross-checks. */
  instructions: AsmInstruction[];
}

/** Where every guest image is loaded. */
export const GUEST_LOAD_ADDR = 0x1000;
/** COM1 transmit register: bytes written here appear on the serial console. */
export const COM1_PORT = 0x3f8;
/** QEMU isa-debug-exit port: writing V ends the VM with process exit code (V << 1) | 1. */
export const DEBUG_EXIT_PORT = 0xf4;
/** The test VMM's echo register: a 32-bit write here stores V. */
export const TEST_MMIO_BASE = 0xd000_0000;
/** 32-bit reads here return V ^ 0xffffffff (V as last written to {@linkcode TEST_MMIO_BASE}). */
export const TEST_MMIO_ECHO = TEST_MMIO_BASE + 4;
/** Initial SP of vCPU 0; vCPU i starts at `GUEST_STACK_TOP - i * GUEST_STACK_STRIDE`. */
export const GUEST_STACK_TOP = 0x7000;
/** Distance between the initial stack pointers of consecutive vCPUs. */
export const GUEST_STACK_STRIDE = 0x400;
/** Long-mode guests build their page tables here (PML4, PDPT, 4 PDs: 0x8000..0xdfff). */
export const GUEST_PAGE_TABLES = 0x8000;
/** Guest RAM every guest needs (image, stacks, page tables), in bytes. */
export const GUEST_MIN_RAM = 0x10000;

/**
 * Process exit code the VMM reports after the guest writes `value` to the debug-exit port.
 *
 * @example
 * ```ts
 * import { debugExitStatus } from "./guest.ts";
 * debugExitStatus(0x10); // 33
 * ```
 */
export function debugExitStatus(value: number): number {
  return ((value & 0xff) << 1) | 1;
}

/** Assembles a guest's source at {@linkcode GUEST_LOAD_ADDR}; it must define `start`. */
export function buildGuest(source: string): Guest {
  const out = assemble(source, { origin: GUEST_LOAD_ADDR, bits: 16 });
  const entry = out.labels.start;
  if (entry === undefined) throw new SyntaxError("Guest source has no 'start' label");
  if (GUEST_LOAD_ADDR + out.code.length > GUEST_STACK_TOP - 4 * GUEST_STACK_STRIDE) {
    throw new RangeError("Guest image overlaps the vCPU stacks");
  }
  return {
    code: out.code,
    loadAddr: GUEST_LOAD_ADDR,
    entry,
    labels: out.labels,
    instructions: out.instructions,
  };
}
