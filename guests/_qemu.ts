/**
 * Test helper: runs a guest under QEMU's TCG emulator with a tiny firmware that establishes the
 * guests' entry contract, so the guests' behaviour is checked on an independent x86 without KVM.
 *
 * The firmware is a 64 KiB `-bios` image built with our assembler. From the reset vector it
 * copies the guest to `loadAddr` and an AP trampoline to 0x9000, enters protected mode to
 * program the local APIC (LINT1 as NMI; with two vCPUs, INIT + SIPI vector 9 to the other CPU)
 * and returns to real mode. It points the real-mode NMI vector at an IRET, so an NMI injected
 * over QMP wakes a halted CPU the way a VMM resumes KVM_EXIT_HLT. Every CPU then sets CS=DS=ES=SS=0, SP=0x7000-index*0x400, DI=index
 * and far-jumps to the guest entry. Port 0xf4 is QEMU's isa-debug-exit, COM1 goes to stdout.
 *
 * @module
 */
import { assemble } from "./asm.ts";
import { type Guest, GUEST_STACK_STRIDE, GUEST_STACK_TOP } from "./guest.ts";

const ROM_SIZE = 0x10000;
const TRAMPOLINE = 0x9000;

/** True when qemu-system-x86_64 can be run. */
export function hasQemu(): boolean {
  try {
    return new Deno.Command("qemu-system-x86_64", { args: ["--version"], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Builds the 64 KiB firmware image that starts `guest` on `cpus` CPUs. */
export function firmware(guest: Guest, cpus: 1 | 2): Uint8Array {
  const hex = (n: number) => `0x${n.toString(16)}`;
  const sipi = cpus === 2
    ? `
    mov dword [0xfee00300], 0x000c4500    ; ICR: INIT, all excluding self
    mov ecx, 100000
.delay:
    dec ecx
    jnz .delay
    mov dword [0xfee00300], 0x000c4600 + ${hex(TRAMPOLINE >> 12)}  ; ICR: SIPI`
    : "";
  const fw = assemble(
    `
bits 16
fw_start:
    cli
    cld
    mov ax, 0xf000
    mov ds, ax
    xor ax, ax
    mov es, ax
    mov si, image
    mov di, ${hex(guest.loadAddr)}
    mov cx, ${guest.code.length}
    rep movsb
    mov si, trampoline
    mov di, ${hex(TRAMPOLINE)}
    mov cx, trampoline_end - trampoline
    rep movsb
    lgdt [fw_gdtr]                ; protected mode, to reach the local APIC
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    jmp dword 0x08:0xf0000 + fw_pm32
bits 32
fw_pm32:
    mov ax, 0x10
    mov ds, ax
    mov dword [0xfee000f0], 0x1ff         ; SVR: software enable
    mov dword [0xfee00360], 0x400         ; LVT LINT1: NMI (QEMU's inject-nmi comes this way)
${sipi}
    jmp 0x18:fw_pm16
bits 16
fw_pm16:                                ; back to real mode through a 16-bit segment
    mov ax, 0x20
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr0
    and eax, 0xfffffffe
    mov cr0, eax
    jmp 0xf000:fw_real
fw_real:
    xor ax, ax
    mov ds, ax
    mov word [2 * 4], nmi_stub - trampoline + ${hex(TRAMPOLINE)}   ; IVT[2] = 0:nmi_stub
    mov word [2 * 4 + 2], 0
    mov es, ax
    mov ss, ax
    mov sp, ${hex(GUEST_STACK_TOP)}
    xor di, di
    jmp 0:${hex(guest.entry)}
trampoline:                             ; runs at 0900:0000 on the second CPU
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, ${hex(GUEST_STACK_TOP - GUEST_STACK_STRIDE)}
    mov di, 1
    jmp 0:${hex(guest.entry)}
nmi_stub:
    iret
trampoline_end:
align 8
fw_gdt:
    dq 0
    dq 0x00cf9a000000ffff                 ; 0x08 32-bit code, flat
    dq 0x00cf92000000ffff                 ; 0x10 data, flat
    dq 0x00009a0f0000ffff                 ; 0x18 16-bit code, base 0xf0000
    dq 0x000092000000ffff                 ; 0x20 16-bit data, base 0, limit 0xffff
fw_gdtr:
    dw 5 * 8 - 1
    dd 0xf0000 + fw_gdt
image:
`,
    { origin: 0, bits: 16 },
  );
  const rom = new Uint8Array(ROM_SIZE);
  rom.set(fw.code);
  if (fw.code.length + guest.code.length > ROM_SIZE - 16) throw new RangeError("Guest too big");
  rom.set(guest.code, fw.labels.image);
  rom.set([0xea, 0x00, 0x00, 0x00, 0xf0], ROM_SIZE - 16); // reset vector: jmp 0xf000:0
  return rom;
}

/** Result of a QEMU run. */
export interface QemuResult {
  /** QEMU's exit status: (V << 1) | 1 after a debug exit, or -1 when killed on timeout. */
  code: number;
  /** Everything the guest wrote to COM1. */
  serial: string;
}

/** Options of {@linkcode runInQemu}. */
export interface QemuOptions {
  /** CPUs to start; default 1. */
  cpus?: 1 | 2;
  /** Kill QEMU after this long; default 20 s. */
  timeoutMs?: number;
  /** Inject one NMI (over QMP) once the serial output contains this text. */
  nmiAfter?: string;
}

/** Runs `guest` under QEMU TCG; kills it after `timeoutMs`. */
export async function runInQemu(guest: Guest, options: QemuOptions = {}): Promise<QemuResult> {
  const cpus = options.cpus ?? 1;
  const dir = await Deno.makeTempDir({ prefix: "denovmm-qemu-" });
  const bios = `${dir}/bios.bin`;
  const qmp = `${dir}/qmp.sock`;
  try {
    await Deno.writeFile(bios, firmware(guest, cpus));
    const child = new Deno.Command("qemu-system-x86_64", {
      args: [
        "-machine",
        "pc",
        "-accel",
        "tcg",
        "-smp",
        String(cpus),
        "-m",
        "16",
        "-bios",
        bios,
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-qmp",
        `unix:${qmp},server=on,wait=off`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? 20_000);
    let serial = "";
    let nmiSent = false;
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      serial += decoder.decode(chunk, { stream: true });
      if (options.nmiAfter !== undefined && !nmiSent && serial.includes(options.nmiAfter)) {
        nmiSent = true;
        await injectNmi(qmp);
      }
    }
    const status = await child.status;
    clearTimeout(timer);
    await child.stderr.cancel();
    return { code: timedOut ? -1 : status.code, serial };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function injectNmi(path: string): Promise<void> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    const enc = new TextEncoder();
    await conn.write(enc.encode('{"execute":"qmp_capabilities"}\n{"execute":"inject-nmi"}\n'));
    // Wait for the greeting and both replies so the commands have run before we hang up.
    const buf = new Uint8Array(4096);
    let text = "";
    while ((text.match(/"return"/g) ?? []).length < 2) {
      // The NMI may let the guest exit, and QEMU with it, before the replies are read.
      const n = await conn.read(buf).catch((e) => {
        if (e instanceof Deno.errors.ConnectionReset) return null;
        throw e;
      });
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } finally {
    conn.close();
  }
}
