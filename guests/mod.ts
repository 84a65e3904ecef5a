/**
 * Project-authored x86 test guests, assembled from TypeScript at run time, and the assembler
 * that builds them.
 *
 * ## Entry contract (what the VMM provides)
 * - The image `code` is copied to guest-physical `loadAddr` (0x1000); guest RAM starts at 0 and
 *   is at least {@linkcode GUEST_MIN_RAM} (64 KiB) long.
 * - Every vCPU starts at once, in real mode: CS = DS = ES = SS = 0 (base 0, limit 0xffff),
 *   IP = `entry`, SP = 0x7000 - index * 0x400, DI = vCPU index, RFLAGS.IF = 0. Other registers
 *   are unspecified. No in-kernel irqchip is needed.
 * - COM1: a byte written to port 0x3f8 (THR of a 16550, uninitialised) appears on the serial
 *   console.
 * - Debug exit (QEMU isa-debug-exit): a byte V written to port 0xf4 ends the VM with process
 *   exit code (V << 1) | 1.
 * - Test MMIO echo device at 0xd000_0000 (outside RAM, 8 bytes): a 32-bit write at +0 stores V;
 *   a 32-bit read at +4 returns V ^ 0xffffffff.
 * - KVM_EXIT_HLT (no irqchip): the VMM re-enters KVM_RUN (the guest continues after the HLT).
 *
 * ## Memory map used by the guests
 * 0x1000.. image (< 0x5c00) · 0x6000..0x7000 stacks · 0x8000..0xdfff long-mode page tables.
 *
 * | guest | vCPUs | COM1 output | exit code |
 * |---|---|---|---|
 * | realModeHello() | 1 | `Hello from real mode\n` | 33 |
 * | longModeHello() | 1 | `Hello from long mode\nrax=0xdeadbeefcafef00d\n` | 35 |
 * | mmioRoundTrip() | 1 | `MMIO OK\n` / `MMIO BAD\n` | 37 / 39 |
 * | haltGuest() | 1 | `Halting\nResumed after HLT\n` (one HLT exit between) | 41 |
 * | twoVcpus() | 2 | `cpu 0 ok\n` and `cpu 1 ok\n`, either order / `not concurrent\n` | 43 / 45 |
 * | pioLoop(n) | 1 | none; n writes to port 0x500 | 47 |
 *
 * twoVcpus: the first vCPU to finish loops on HLT (resume it) until the other debug-exits; a
 * vCPU gives up after `timeoutTicks` TSC ticks (default 2^34, ~5-10 s) if the other never runs.
 *
 * Verification without KVM: `guests_test.ts` decodes every emitted instruction with objdump,
 * `asm_test.ts` compares the encodings table by table, and `qemu_test.ts` runs each guest on
 * QEMU's TCG through a small firmware (`_qemu.ts`) that sets up this same entry contract.
 *
 * @module
 */
export * from "./asm.ts";
export * from "./guest.ts";
export * from "./real_mode_hello.ts";
export * from "./long_mode_hello.ts";
export * from "./mmio_round_trip.ts";
export * from "./halt_guest.ts";
export * from "./two_vcpus.ts";
export * from "./pio_loop.ts";
