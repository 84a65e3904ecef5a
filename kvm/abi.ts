/**
 * The KVM ABI as this project uses it: ioctl numbers, constants and struct
 * layouts (offsets and sizes), declared once. `abi_test.ts` compiles a C
 * probe against `<linux/kvm.h>` and fails on any difference, so nothing here
 * is trusted from memory.
 *
 * Field keys are C member designators (`io.port`), exactly what `offsetof`
 * takes, which is how the probe checks them.
 *
 * @module
 */

const KVMIO = 0xae;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(dir: number, nr: number, size: number): number {
  // (dir << 30) | (size << 16) | (type << 8) | nr, kept unsigned.
  return ((dir << 30) >>> 0) + (size << 16) + (KVMIO << 8) + nr;
}
function io(nr: number): number {
  return ioc(0, nr, 0);
}
function ior(nr: number, size: number): number {
  return ioc(IOC_READ, nr, size);
}
function iow(nr: number, size: number): number {
  return ioc(IOC_WRITE, nr, size);
}
function iowr(nr: number, size: number): number {
  return ioc(IOC_READ | IOC_WRITE, nr, size);
}

/** A C struct: its size and the offsets of the members we touch. */
export interface StructLayout {
  /** The C type, e.g. `struct kvm_run`. */
  readonly cType: string;
  /** sizeof. */
  readonly size: number;
  /** offsetof, keyed by member designator. */
  readonly fields: Readonly<Record<string, number>>;
}

function layout<F extends Record<string, number>>(
  cType: string,
  size: number,
  fields: F,
): StructLayout & { readonly fields: Readonly<F> } {
  return Object.freeze({ cType, size, fields: Object.freeze(fields) });
}

/** struct kvm_run: the shared page between KVM and the vCPU thread. */
export const kvm_run = layout("struct kvm_run", 2352, {
  "request_interrupt_window": 0,
  "immediate_exit": 1,
  "exit_reason": 8,
  "ready_for_interrupt_injection": 12,
  "if_flag": 13,
  "flags": 14,
  "cr8": 16,
  "apic_base": 24,
  "io.direction": 32,
  "io.size": 33,
  "io.port": 34,
  "io.count": 36,
  "io.data_offset": 40,
  "mmio.phys_addr": 32,
  "mmio.data": 40,
  "mmio.len": 48,
  "mmio.is_write": 52,
  "fail_entry.hardware_entry_failure_reason": 32,
  "fail_entry.cpu": 40,
  "internal.suberror": 32,
  "internal.ndata": 36,
  "internal.data": 40,
  "system_event.type": 32,
  "system_event.ndata": 36,
  "system_event.data": 40,
  "ex.exception": 32,
  "ex.error_code": 36,
});

/** struct kvm_regs: general-purpose registers. */
export const kvm_regs = layout("struct kvm_regs", 144, {
  rax: 0,
  rbx: 8,
  rcx: 16,
  rdx: 24,
  rsi: 32,
  rdi: 40,
  rsp: 48,
  rbp: 56,
  r8: 64,
  r9: 72,
  r10: 80,
  r11: 88,
  r12: 96,
  r13: 104,
  r14: 112,
  r15: 120,
  rip: 128,
  rflags: 136,
});

/** struct kvm_segment. */
export const kvm_segment = layout("struct kvm_segment", 24, {
  base: 0,
  limit: 8,
  selector: 12,
  type: 14,
  present: 15,
  dpl: 16,
  db: 17,
  s: 18,
  l: 19,
  g: 20,
  avl: 21,
  unusable: 22,
});

/** struct kvm_dtable (GDT/IDT register). */
export const kvm_dtable = layout("struct kvm_dtable", 16, { base: 0, limit: 8 });

/** struct kvm_sregs: segment and control registers. */
export const kvm_sregs = layout("struct kvm_sregs", 312, {
  cs: 0,
  ds: 24,
  es: 48,
  fs: 72,
  gs: 96,
  ss: 120,
  tr: 144,
  ldt: 168,
  gdt: 192,
  idt: 208,
  cr0: 224,
  cr2: 232,
  cr3: 240,
  cr4: 248,
  cr8: 256,
  efer: 264,
  apic_base: 272,
  interrupt_bitmap: 280,
});

/** struct kvm_fpu: x87/SSE state. */
export const kvm_fpu = layout("struct kvm_fpu", 416, {
  fpr: 0,
  fcw: 128,
  fsw: 130,
  ftwx: 132,
  last_opcode: 134,
  last_ip: 136,
  last_dp: 144,
  xmm: 152,
  mxcsr: 408,
});

/** struct kvm_userspace_memory_region. */
export const kvm_userspace_memory_region = layout("struct kvm_userspace_memory_region", 32, {
  slot: 0,
  flags: 4,
  guest_phys_addr: 8,
  memory_size: 16,
  userspace_addr: 24,
});

/** struct kvm_cpuid2 header; entries follow. */
export const kvm_cpuid2 = layout("struct kvm_cpuid2", 8, { nent: 0, entries: 8 });

/** struct kvm_cpuid_entry2. */
export const kvm_cpuid_entry2 = layout("struct kvm_cpuid_entry2", 40, {
  function: 0,
  index: 4,
  flags: 8,
  eax: 12,
  ebx: 16,
  ecx: 20,
  edx: 24,
});

/** struct kvm_msrs header; entries follow. */
export const kvm_msrs = layout("struct kvm_msrs", 8, { nmsrs: 0, entries: 8 });

/** struct kvm_msr_entry. */
export const kvm_msr_entry = layout("struct kvm_msr_entry", 16, { index: 0, data: 8 });

/** struct kvm_pit_config. */
export const kvm_pit_config = layout("struct kvm_pit_config", 64, { flags: 0 });

/** struct kvm_irq_level. */
export const kvm_irq_level = layout("struct kvm_irq_level", 8, { irq: 0, level: 4 });

/** struct kvm_irqfd. */
export const kvm_irqfd = layout("struct kvm_irqfd", 32, {
  fd: 0,
  gsi: 4,
  flags: 8,
  resamplefd: 12,
});

/** struct kvm_ioeventfd. */
export const kvm_ioeventfd = layout("struct kvm_ioeventfd", 64, {
  datamatch: 0,
  addr: 8,
  len: 16,
  fd: 20,
  flags: 24,
});

/** struct kvm_msi. */
export const kvm_msi = layout("struct kvm_msi", 32, {
  address_lo: 0,
  address_hi: 4,
  data: 8,
  flags: 12,
  devid: 16,
});

/** struct kvm_lapic_state: the APIC register page. */
export const kvm_lapic_state = layout("struct kvm_lapic_state", 1024, { regs: 0 });

/** struct kvm_irq_routing header; entries follow. */
export const kvm_irq_routing = layout("struct kvm_irq_routing", 8, {
  nr: 0,
  flags: 4,
  entries: 8,
});

/** struct kvm_irq_routing_entry. */
export const kvm_irq_routing_entry = layout("struct kvm_irq_routing_entry", 48, {
  gsi: 0,
  type: 4,
  flags: 8,
  "u.irqchip.irqchip": 16,
  "u.irqchip.pin": 20,
  "u.msi.address_lo": 16,
  "u.msi.address_hi": 20,
  "u.msi.data": 24,
});

/** struct kvm_mp_state. */
export const kvm_mp_state = layout("struct kvm_mp_state", 4, { mp_state: 0 });

/** struct kvm_enable_cap. */
/** struct kvm_coalesced_mmio_zone: a range whose writes queue in the ring instead of exiting. */
export const kvm_coalesced_mmio_zone = layout("struct kvm_coalesced_mmio_zone", 16, {
  addr: 0,
  size: 8,
  pio: 12,
});

/** struct kvm_coalesced_mmio: one queued write in the ring. */
export const kvm_coalesced_mmio = layout("struct kvm_coalesced_mmio", 24, {
  phys_addr: 0,
  len: 8,
  pio: 12,
  data: 16,
});

/** struct kvm_coalesced_mmio_ring: `first` is the VMM's, `last` the kernel's. */
export const kvm_coalesced_mmio_ring = layout("struct kvm_coalesced_mmio_ring", 8, {
  first: 0,
  last: 4,
  coalesced_mmio: 8,
});

/** Entries in the ring: a 4 KiB page less its header (KVM_COALESCED_MMIO_MAX). */
export const KVM_COALESCED_MMIO_MAX = Math.floor(
  (4096 - kvm_coalesced_mmio_ring.size) / kvm_coalesced_mmio.size,
);

export const kvm_enable_cap = layout("struct kvm_enable_cap", 104, {
  cap: 0,
  flags: 4,
  args: 8,
});

/** Every layout, for the probe. */
export const LAYOUTS: readonly StructLayout[] = [
  kvm_run,
  kvm_regs,
  kvm_segment,
  kvm_dtable,
  kvm_sregs,
  kvm_fpu,
  kvm_userspace_memory_region,
  kvm_cpuid2,
  kvm_cpuid_entry2,
  kvm_msrs,
  kvm_msr_entry,
  kvm_pit_config,
  kvm_irq_level,
  kvm_irqfd,
  kvm_ioeventfd,
  kvm_msi,
  kvm_lapic_state,
  kvm_irq_routing,
  kvm_irq_routing_entry,
  kvm_mp_state,
  kvm_enable_cap,
  kvm_coalesced_mmio_zone,
  kvm_coalesced_mmio,
  kvm_coalesced_mmio_ring,
];

/** ioctl request numbers, by their `<linux/kvm.h>` names. */
export const IOCTLS = Object.freeze({
  KVM_GET_API_VERSION: io(0x00),
  KVM_CREATE_VM: io(0x01),
  KVM_CHECK_EXTENSION: io(0x03),
  KVM_GET_VCPU_MMAP_SIZE: io(0x04),
  KVM_GET_SUPPORTED_CPUID: iowr(0x05, kvm_cpuid2.size),
  KVM_CREATE_VCPU: io(0x41),
  KVM_SET_USER_MEMORY_REGION: iow(0x46, kvm_userspace_memory_region.size),
  KVM_SET_TSS_ADDR: io(0x47),
  KVM_SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  KVM_CREATE_IRQCHIP: io(0x60),
  KVM_IRQ_LINE: iow(0x61, kvm_irq_level.size),
  KVM_SET_GSI_ROUTING: iow(0x6a, kvm_irq_routing.size),
  KVM_IRQFD: iow(0x76, kvm_irqfd.size),
  KVM_CREATE_PIT2: iow(0x77, kvm_pit_config.size),
  KVM_IOEVENTFD: iow(0x79, kvm_ioeventfd.size),
  KVM_REGISTER_COALESCED_MMIO: iow(0x67, kvm_coalesced_mmio_zone.size),
  KVM_ENABLE_CAP: iow(0xa3, kvm_enable_cap.size),
  KVM_SIGNAL_MSI: iow(0xa5, kvm_msi.size),
  KVM_RUN: io(0x80),
  KVM_GET_REGS: ior(0x81, kvm_regs.size),
  KVM_SET_REGS: iow(0x82, kvm_regs.size),
  KVM_GET_SREGS: ior(0x83, kvm_sregs.size),
  KVM_SET_SREGS: iow(0x84, kvm_sregs.size),
  KVM_GET_MSRS: iowr(0x88, kvm_msrs.size),
  KVM_SET_MSRS: iow(0x89, kvm_msrs.size),
  KVM_GET_FPU: ior(0x8c, kvm_fpu.size),
  KVM_SET_FPU: iow(0x8d, kvm_fpu.size),
  KVM_GET_LAPIC: ior(0x8e, kvm_lapic_state.size),
  KVM_SET_LAPIC: iow(0x8f, kvm_lapic_state.size),
  KVM_SET_CPUID2: iow(0x90, kvm_cpuid2.size),
  KVM_GET_MP_STATE: ior(0x98, kvm_mp_state.size),
  KVM_SET_MP_STATE: iow(0x99, kvm_mp_state.size),
});

/** The API version every KVM since 2.6.22 reports. */
export const KVM_API_VERSION = 12;

/** Exit reasons (kvm_run.exit_reason). */
export const KVM_EXIT_UNKNOWN = 0;
/** Guest exception (debugging). */
export const KVM_EXIT_EXCEPTION = 1;
/** Port I/O. */
export const KVM_EXIT_IO = 2;
/** Hypercall. */
export const KVM_EXIT_HYPERCALL = 3;
/** Debug exit. */
export const KVM_EXIT_DEBUG = 4;
/** HLT without an in-kernel irqchip. */
export const KVM_EXIT_HLT = 5;
/** MMIO outside RAM. */
export const KVM_EXIT_MMIO = 6;
/** Interrupt window open. */
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
/** Triple fault / shutdown. */
export const KVM_EXIT_SHUTDOWN = 8;
/** VM entry failed. */
export const KVM_EXIT_FAIL_ENTRY = 9;
/** Interrupted by a signal. */
export const KVM_EXIT_INTR = 10;
/** KVM could not handle something. */
export const KVM_EXIT_INTERNAL_ERROR = 17;
/** Shutdown/reset/crash request (PSCI, etc.). */
export const KVM_EXIT_SYSTEM_EVENT = 24;

/** kvm_run.io.direction. */
export const KVM_EXIT_IO_IN = 0;
/** Port write. */
export const KVM_EXIT_IO_OUT = 1;

/** Capabilities (KVM_CHECK_EXTENSION). */
export const KVM_CAP_IRQCHIP = 0;
/** Memory slots. */
export const KVM_CAP_USER_MEMORY = 3;
/** Recommended vCPU count. */
export const KVM_CAP_NR_VCPUS = 9;
/** GSI routing. */
export const KVM_CAP_IRQ_ROUTING = 25;
/** irqfd. */
export const KVM_CAP_IRQFD = 32;
/** In-kernel PIT v2. */
export const KVM_CAP_PIT2 = 33;
/** ioeventfd. */
export const KVM_CAP_IOEVENTFD = 36;
/** Maximum vCPUs. */
export const KVM_CAP_MAX_VCPUS = 66;
/** The LAPIC TSC-deadline timer is emulated. */
export const KVM_CAP_TSC_DEADLINE_TIMER = 72;
/** MSI injection. */
export const KVM_CAP_SIGNAL_MSI = 77;
/** kvm_run.immediate_exit. */
export const KVM_CAP_IMMEDIATE_EXIT = 136;
/** KVM_CHECK_EXTENSION: the coalesced ring's page in a vCPU's mapping (0: none). */
export const KVM_CAP_COALESCED_MMIO = 15;
/** Coalesced zones may be port ranges (Linux 4.20+). */
export const KVM_CAP_COALESCED_PIO = 162;

/** KVM_IRQFD flags. */
export const KVM_IRQFD_FLAG_DEASSIGN = 1;
/** KVM_IOEVENTFD flags. */
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
/** The ioeventfd is on the PIO bus. */
export const KVM_IOEVENTFD_FLAG_PIO = 2;
/** Remove the ioeventfd. */
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 4;
/** PIT speaker dummy flag. */
export const KVM_PIT_SPEAKER_DUMMY = 1;
/** Routing entry type: irqchip pin. */
export const KVM_IRQ_ROUTING_IRQCHIP = 1;
/** Routing entry type: MSI. */
export const KVM_IRQ_ROUTING_MSI = 2;
/** irqchip ids. */
export const KVM_IRQCHIP_PIC_MASTER = 0;
/** Slave PIC. */
export const KVM_IRQCHIP_PIC_SLAVE = 1;
/** IOAPIC. */
export const KVM_IRQCHIP_IOAPIC = 2;
/** mp_state values. */
export const KVM_MP_STATE_RUNNABLE = 0;
/** AP waiting for INIT/SIPI. */
export const KVM_MP_STATE_UNINITIALIZED = 1;
/** system_event types. */
export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
/** Reset requested. */
export const KVM_SYSTEM_EVENT_RESET = 2;
/** Guest crashed. */
export const KVM_SYSTEM_EVENT_CRASH = 3;

/** Constants the probe checks by name, beyond ioctls. */
export const CONSTANTS: Readonly<Record<string, number>> = Object.freeze({
  KVM_API_VERSION,
  KVM_EXIT_IO,
  KVM_EXIT_HLT,
  KVM_EXIT_MMIO,
  KVM_EXIT_SHUTDOWN,
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_INTR,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_SYSTEM_EVENT,
  KVM_EXIT_IO_IN,
  KVM_EXIT_IO_OUT,
  KVM_CAP_IRQCHIP,
  KVM_CAP_USER_MEMORY,
  KVM_CAP_NR_VCPUS,
  KVM_CAP_IRQ_ROUTING,
  KVM_CAP_IRQFD,
  KVM_CAP_PIT2,
  KVM_CAP_IOEVENTFD,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_SIGNAL_MSI,
  KVM_CAP_TSC_DEADLINE_TIMER,
  KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_COALESCED_MMIO,
  KVM_CAP_COALESCED_PIO,
  KVM_IRQFD_FLAG_DEASSIGN,
  KVM_IOEVENTFD_FLAG_DATAMATCH,
  KVM_IOEVENTFD_FLAG_PIO,
  KVM_IOEVENTFD_FLAG_DEASSIGN,
  KVM_PIT_SPEAKER_DUMMY,
  KVM_IRQ_ROUTING_IRQCHIP,
  KVM_IRQ_ROUTING_MSI,
  KVM_IRQCHIP_IOAPIC,
  KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_UNINITIALIZED,
  KVM_SYSTEM_EVENT_SHUTDOWN,
  KVM_SYSTEM_EVENT_RESET,
});
