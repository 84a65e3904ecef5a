/**
 * Per-vCPU x86 set-up before the first KVM_RUN: CPUID (what KVM supports,
 * adjusted for this vCPU's APIC id and the VM's topology), boot MSRs, FPU
 * and MXCSR, LAPIC LINT0/LINT1, and the register state a loader chose.
 *
 * @module
 */
import type { CpuidEntry } from "../kvm/kvm.ts";
import type { KvmVcpu } from "../kvm/vcpu.ts";
import type { Segment, Sregs } from "../hypervisor/types.ts";
import type { CpuBootState, SegmentState } from "../boot/x86_64.ts";

/** CPUID.1:ECX.HYPERVISOR. */
const CPUID1_ECX_HYPERVISOR = 1 << 31;
/** CPUID.1:ECX.TSC-Deadline: KVM emulates it but leaves it out of the supported list. */
const CPUID1_ECX_TSC_DEADLINE = 1 << 24;
/** CPUID.1:EDX.HTT. */
const CPUID1_EDX_HTT = 1 << 28;
/** KVM_CPUID_FLAG_SIGNIFCANT_INDEX. */
const SIGNIFICANT_INDEX = 1;
/** The processor brand string: 48 bytes in leaves 0x80000002-0x80000004. */
const BRAND_LEAF = 0x8000_0002;
const BRAND_BYTES = 48;

function bitsFor(n: number): number {
  let b = 0;
  while ((1 << b) < n) b++;
  return b;
}

/**
 * CPUID for vCPU `index` of `cpus`, from KVM_GET_SUPPORTED_CPUID.
 *
 * One socket, one thread per core, `cpus` cores; APIC id = index. With
 * `brand`, the processor brand string leaves carry it: KVM's supported list
 * has them zeroed, and a guest then names the CPU from its family alone
 * (Linux's /proc/cpuinfo showed "Hammer" on a family 0xf host), so the
 * caller passes the host's (sys/host_cpuid.ts), as QEMU's `-cpu host` does.
 *
 * @param supported what KVM offers
 * @param index this vCPU
 * @param cpus vCPUs in the VM
 * @param options host capabilities to advertise, the brand string
 * @returns entries for KVM_SET_CPUID2
 * @example
 * ```ts
 * import { vcpuCpuid } from "./x86_cpu.ts";
 * const e = vcpuCpuid([{ function: 1, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 }], 1, 2);
 * console.log((e[0].ebx >>> 24) === 1);
 * ```
 */
export function vcpuCpuid(
  supported: readonly CpuidEntry[],
  index: number,
  cpus: number,
  options: { tscDeadline?: boolean; brand?: string } = {},
): CpuidEntry[] {
  const vendor = supported.find((e) => e.function === 0);
  const intel = vendor?.ebx === 0x756e6547; // "Genu"
  const coreBits = bitsFor(cpus);
  const out: CpuidEntry[] = [];
  for (const s of supported) {
    const e = { ...s };
    switch (e.function) {
      case 1:
        e.ebx = (e.ebx & 0x0000ffff) | ((cpus & 0xff) << 16) | ((index & 0xff) << 24);
        e.ecx |= CPUID1_ECX_HYPERVISOR;
        // Without it Linux calibrates the LAPIC timer against the PIT, which
        // goes wrong when the host is slow (nested); with it, lapic-deadline.
        if (options.tscDeadline) e.ecx |= CPUID1_ECX_TSC_DEADLINE;
        if (cpus > 1) e.edx |= CPUID1_EDX_HTT;
        else e.edx &= ~CPUID1_EDX_HTT;
        break;
      case 4:
        if (intel) {
          // Cores sharing the package (bits 31:26) and threads sharing the cache (25:14).
          e.eax = (e.eax & 0x3fff) | ((cpus - 1) << 26);
          e.flags |= SIGNIFICANT_INDEX;
        }
        break;
      case 0xb:
      case 0x1f:
        e.flags |= SIGNIFICANT_INDEX;
        if (e.index === 0) {
          e.eax = 0;
          e.ebx = 1;
          e.ecx = (1 << 8) | 0;
        } else if (e.index === 1) {
          e.eax = coreBits;
          e.ebx = cpus;
          e.ecx = (2 << 8) | 1;
        } else {
          e.eax = 0;
          e.ebx = 0;
          e.ecx = e.index & 0xff;
        }
        e.edx = index;
        break;
      case 0x80000008:
        // AMD: NC (cores - 1) and APIC id size.
        if (!intel) e.ecx = (e.ecx & ~0xf0ff) | ((cpus - 1) & 0xff) | (coreBits << 12);
        break;
      case 0x8000001e:
        if (!intel) {
          e.eax = index;
          e.ebx = index & 0xff;
          e.ecx = 0;
        }
        break;
    }
    out.push(e);
  }
  // Leaf 0xb may be missing from the list on some hosts; Linux reads
  // topology from leaf 1 then, which is set above.
  const maxExtended = out.find((e) => e.function === 0x8000_0000)?.eax ?? 0;
  if (options.brand && maxExtended >= BRAND_LEAF + 2) setBrand(out, options.brand);
  return out;
}

/** Writes `brand` (ASCII, cut at 47 bytes, NUL-padded) into the three brand leaves. */
function setBrand(entries: CpuidEntry[], brand: string): void {
  const bytes = new Uint8Array(BRAND_BYTES);
  for (let i = 0; i < Math.min(brand.length, BRAND_BYTES - 1); i++) {
    const c = brand.charCodeAt(i);
    bytes[i] = c >= 0x20 && c < 0x7f ? c : 0x3f; // "?"
  }
  const words = new DataView(bytes.buffer);
  for (let leaf = 0; leaf < 3; leaf++) {
    const fn = BRAND_LEAF + leaf;
    let e = entries.find((x) => x.function === fn);
    if (!e) {
      e = { function: fn, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
      entries.push(e);
    }
    const o = leaf * 16;
    e.eax = words.getUint32(o, true);
    e.ebx = words.getUint32(o + 4, true);
    e.ecx = words.getUint32(o + 8, true);
    e.edx = words.getUint32(o + 12, true);
  }
}

/** MSRs set at boot (index, value), as Firecracker and QEMU set them for a direct boot. */
export const BOOT_MSRS: readonly { index: number; data: bigint }[] = [
  { index: 0x174, data: 0n }, // IA32_SYSENTER_CS
  { index: 0x175, data: 0n }, // IA32_SYSENTER_ESP
  { index: 0x176, data: 0n }, // IA32_SYSENTER_EIP
  { index: 0xc0000081, data: 0n }, // STAR
  { index: 0xc0000082, data: 0n }, // LSTAR
  { index: 0xc0000083, data: 0n }, // CSTAR
  { index: 0xc0000102, data: 0n }, // KERNEL_GS_BASE
  { index: 0xc0000084, data: 0n }, // SYSCALL_MASK
  { index: 0x10, data: 0n }, // IA32_TSC
  { index: 0x1a0, data: 1n }, // IA32_MISC_ENABLE: fast strings
  { index: 0x2ff, data: 0x806n }, // MTRRdefType: enabled, write-back
];

/**
 * Sets the boot MSRs one by one, skipping any this host's KVM rejects
 * (those stay at KVM's reset value).
 *
 * @param vcpu the vCPU
 * @returns indexes that were rejected
 */
export function setBootMsrs(vcpu: KvmVcpu): number[] {
  const rejected: number[] = [];
  for (const m of BOOT_MSRS) {
    try {
      vcpu.setMsrs([m]);
    } catch {
      rejected.push(m.index);
    }
  }
  return rejected;
}

/** LVT LINT0 and LINT1 register offsets in the LAPIC page. */
const APIC_LVT0 = 0x350;
const APIC_LVT1 = 0x360;
const APIC_MODE_NMI = 4;
const APIC_MODE_EXTINT = 7;

/**
 * Wires LINT0 as ExtINT (the PIC) and LINT1 as NMI, as a PC's BIOS does.
 *
 * @param vcpu the vCPU (needs the in-kernel irqchip)
 */
export function setupLapicLints(vcpu: KvmVcpu): void {
  const page = vcpu.getLapic();
  const v = new DataView(page.buffer);
  const lvt = (off: number, mode: number) =>
    v.setUint32(off, (v.getUint32(off, true) & ~0x700) | (mode << 8), true);
  lvt(APIC_LVT0, APIC_MODE_EXTINT);
  lvt(APIC_LVT1, APIC_MODE_NMI);
  vcpu.setLapic(page);
}

/** A register value as u64: loaders build 32-bit ones with bit ops, which JS makes signed. */
function u64(n: number): bigint {
  return BigInt(n < 0 && n >= -0x8000_0000 ? n >>> 0 : n);
}

function toSegment(s: SegmentState): Segment {
  return {
    base: BigInt(s.base),
    limit: s.limit >>> 0,
    selector: s.selector,
    type: s.type,
    present: s.present,
    dpl: s.dpl,
    db: s.db,
    s: s.s,
    l: s.l,
    g: s.g,
    avl: s.avl,
    unusable: s.unusable,
  };
}

/**
 * Loads a loader's entry state into the vCPU's registers.
 *
 * @param vcpu the vCPU
 * @param state from setupLongMode / setupPvh
 */
export function applyBootState(vcpu: KvmVcpu, state: CpuBootState): void {
  const cur: Sregs = vcpu.getSregs();
  const b = state.sregs;
  vcpu.setSregs({
    ...cur,
    cs: toSegment(b.cs),
    ds: toSegment(b.ds),
    es: toSegment(b.es),
    fs: toSegment(b.fs),
    gs: toSegment(b.gs),
    ss: toSegment(b.ss),
    tr: toSegment(b.tr),
    ldt: toSegment(b.ldt),
    gdt: { base: BigInt(b.gdt.base), limit: b.gdt.limit },
    idt: { base: BigInt(b.idt.base), limit: b.idt.limit },
    cr0: u64(b.cr0),
    cr3: u64(b.cr3),
    cr4: u64(b.cr4),
    efer: u64(b.efer),
  });
  const r = state.regs;
  const regs = vcpu.getRegs();
  for (const k of Object.keys(regs) as (keyof typeof regs)[]) regs[k] = 0n;
  regs.rip = u64(r.rip);
  regs.rsp = u64(r.rsp);
  regs.rbp = u64(r.rbp);
  regs.rsi = u64(r.rsi);
  regs.rbx = u64(r.rbx);
  regs.rflags = u64(r.rflags);
  vcpu.setRegs(regs);
}
