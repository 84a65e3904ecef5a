/**
 * Register dumps for fatal exits (triple fault, entry failure, internal
 * error), printed to stderr the way QEMU prints them: enough to see where
 * the guest died.
 *
 * @module
 */
import { ExitKind, type Vcpu } from "../hypervisor/types.ts";

const hex = (v: bigint | number, w = 16) => v.toString(16).padStart(w, "0");

/**
 * Describes why a vCPU stopped, with its registers.
 *
 * @param vcpu the vCPU (read on its own thread)
 * @param kind the exit
 * @returns several lines of text
 * @example
 * ```ts ignore
 * console.error(dumpVcpu(vcpu, ExitKind.Shutdown));
 * ```
 */
export function dumpVcpu(vcpu: Vcpu, kind: ExitKind): string {
  const what = kind === ExitKind.Shutdown
    ? "triple fault (KVM_EXIT_SHUTDOWN)"
    : kind === ExitKind.FailEntry
    ? `VM entry failed (KVM_EXIT_FAIL_ENTRY, reason 0x${vcpu.failEntryReason.toString(16)})`
    : kind === ExitKind.InternalError
    ? `KVM internal error (KVM_EXIT_INTERNAL_ERROR, suberror ${vcpu.internalSuberror})`
    : `unexpected exit reason ${vcpu.reason}`;
  const lines = [`denovmm: vcpu-${vcpu.index}: guest stopped: ${what}`];
  try {
    const r = vcpu.getRegs();
    const s = vcpu.getSregs();
    lines.push(
      `RAX=${hex(r.rax)} RBX=${hex(r.rbx)} RCX=${hex(r.rcx)} RDX=${hex(r.rdx)}`,
      `RSI=${hex(r.rsi)} RDI=${hex(r.rdi)} RBP=${hex(r.rbp)} RSP=${hex(r.rsp)}`,
      `R8 =${hex(r.r8)} R9 =${hex(r.r9)} R10=${hex(r.r10)} R11=${hex(r.r11)}`,
      `R12=${hex(r.r12)} R13=${hex(r.r13)} R14=${hex(r.r14)} R15=${hex(r.r15)}`,
      `RIP=${hex(r.rip)} RFL=${hex(r.rflags, 8)}`,
      `CS =${hex(s.cs.selector, 4)} ${hex(s.cs.base)} L=${s.cs.l} DB=${s.cs.db}` +
        ` SS=${hex(s.ss.selector, 4)} DS=${hex(s.ds.selector, 4)}`,
      `CR0=${hex(s.cr0, 8)} CR2=${hex(s.cr2)} CR3=${hex(s.cr3)} CR4=${hex(s.cr4, 8)}`,
      `EFER=${hex(s.efer, 8)} GDT=${hex(s.gdt.base)}/${hex(s.gdt.limit, 4)}` +
        ` IDT=${hex(s.idt.base)}/${hex(s.idt.limit, 4)}`,
    );
  } catch (e) {
    lines.push(`(registers unavailable: ${e instanceof Error ? e.message : e})`);
  }
  return lines.join("\n");
}
