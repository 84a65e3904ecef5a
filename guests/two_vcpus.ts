import { buildGuest, debugExitStatus, type Guest } from "./guest.ts";
import { exitWith, PRINT16 } from "./_snippets.ts";

/** Debug-exit value when both vCPUs ran concurrently. */
export const TWO_VCPUS_OK_EXIT_VALUE = 0x15;
/** Debug-exit value when a vCPU gave up waiting for the other one. */
export const TWO_VCPUS_NOT_CONCURRENT_EXIT_VALUE = 0x16;
/** Process exit code on success: 43. */
export const TWO_VCPUS_OK_EXIT_CODE = debugExitStatus(TWO_VCPUS_OK_EXIT_VALUE);
/** Process exit code when the vCPUs did not run at the same time: 45. */
export const TWO_VCPUS_NOT_CONCURRENT_EXIT_CODE = debugExitStatus(
  TWO_VCPUS_NOT_CONCURRENT_EXIT_VALUE,
);
/**
 * Default time each vCPU may wait for the other, in TSC ticks: 2^34, about 5-10 s at 1.5-3.5
 * GHz. Time-based rather than an iteration count, because an iteration costs ~20 ns on
 * hardware but ~1 µs under QEMU's TCG (the nested test host).
 */
export const TWO_VCPUS_TIMEOUT_TICKS = 2 ** 34;
/** The two lines {@linkcode twoVcpus} prints on success, in either order. */
export const TWO_VCPUS_LINES: readonly string[] = ["cpu 0 ok\n", "cpu 1 ok\n"];
/** What a vCPU prints before exiting with the "not concurrent" code. */
export const TWO_VCPUS_NOT_CONCURRENT_OUTPUT = "not concurrent\n";

/** Options of {@linkcode twoVcpus}. */
export interface TwoVcpusOptions {
  /** TSC ticks a vCPU waits for the other before giving up; default 2^34. */
  timeoutTicks?: number;
}

/**
 * Proves that two vCPUs run at the same time. Run with 2 vCPUs (DI = 0 and 1, as the entry
 * contract says; any vCPU with DI > 1 just halts). In real mode each vCPU:
 *
 * 1. snapshots the other's counter, then loops `lock inc` on its own counter until it sees the
 *    other's counter differ from the snapshot;
 * 2. sets its "seen" flag and keeps incrementing until the other's flag is set too (so the
 *    other vCPU is guaranteed to observe a change while this one is still running);
 * 3. prints `cpu N ok\n` under a spinlock (`xchg`, `pause`) so the lines do not interleave;
 * 4. `lock xadd`s a finish counter: the second vCPU to finish debug-exits with 0x15 (exit code
 *    43); the first halts in a loop (HLT exits; the VMM resumes it, as for haltGuest).
 *
 * A vCPU gives up `timeoutTicks` TSC ticks after its start (checked with RDTSC every 2^16
 * iterations): it prints
 * {@linkcode TWO_VCPUS_NOT_CONCURRENT_OUTPUT} and exits with 0x16 (exit code 45), so a VMM that
 * runs vCPUs one after another fails instead of hanging.
 *
 * @example
 * ```ts
 * import { twoVcpus } from "./two_vcpus.ts";
 * const g = twoVcpus(); // start 2 vCPUs at g.entry with DI = vCPU index
 * ```
 */
export function twoVcpus(options: TwoVcpusOptions = {}): Guest {
  const ticks = options.timeoutTicks ?? TWO_VCPUS_TIMEOUT_TICKS;
  if (!Number.isSafeInteger(ticks) || ticks < 1) {
    throw new RangeError(`Timeout must be a positive integer number of ticks: ${ticks}`);
  }
  const hi = Math.floor(ticks / 2 ** 32);
  const lo = ticks % 2 ** 32;
  return buildGuest(`
bits 16
start:
    cli
    cmp di, 1
    ja idle                       ; only vCPUs 0 and 1 take part
    mov bx, di
    shl bx, 2                     ; bx = offset of my counter and flag
    mov di, bx
    xor di, 4                     ; di = offset of the other vCPU's
    rdtsc
    mov [tsc_lo + bx], eax        ; my start time
    mov [tsc_hi + bx], edx
    mov esi, [counters + di]      ; snapshot of the other's counter
.wait_change:
    mov ecx, 0x10000
.spin_change:
    lock inc dword [counters + bx]
    cmp esi, [counters + di]
    jne .changed
    dec ecx
    jnz .spin_change
    call check_timeout
    jmp .wait_change
.changed:
    mov dword [seen + bx], 1
.wait_seen:
    mov ecx, 0x10000
.spin_seen:
    lock inc dword [counters + bx]
    cmp dword [seen + di], 0
    jne .report
    dec ecx
    jnz .spin_seen
    call check_timeout
    jmp .wait_seen
.report:
    call acquire
    mov si, cpu_text
    call print16
    mov al, bl
    shr al, 2
    add al, '0'
    out dx, al
    mov si, ok_text
    call print16
    mov word [print_lock], 0      ; release
    mov ax, 1
    lock xadd [finished], ax
    cmp ax, 1
    jne idle                      ; the other vCPU is still running: let it exit
    ${exitWith(TWO_VCPUS_OK_EXIT_VALUE)}

not_concurrent:
    call acquire
    mov si, not_concurrent_text
    call print16
    ${exitWith(TWO_VCPUS_NOT_CONCURRENT_EXIT_VALUE)}

check_timeout:                    ; gives up once now - start >= timeout ticks
    rdtsc
    sub eax, [tsc_lo + bx]
    sbb edx, [tsc_hi + bx]
    cmp edx, ${hi}
    ja not_concurrent
    jb .wait
    cmp eax, ${lo}
    jae not_concurrent
.wait:
    ret

idle:
    cli
    hlt
    jmp idle

acquire:                          ; spinlock around COM1 output
    mov ax, 1
    xchg [print_lock], ax
    test ax, ax
    jz .taken
.busy:
    pause
    cmp word [print_lock], 0
    jne .busy
    jmp acquire
.taken:
    ret
${PRINT16}
cpu_text:
    db "cpu ", 0
ok_text:
    db " ok", 10, 0
not_concurrent_text:
    db "not concurrent", 10, 0
align 4
counters:
    dd 0, 0
seen:
    dd 0, 0
tsc_lo:
    dd 0, 0
tsc_hi:
    dd 0, 0
print_lock:
    dw 0
finished:
    dw 0
`);
}
