/**
 * The hypervisor interface the VMM programs against, with no FFI: KVM
 * implements it in kvm/. Register types are neutral (as Cloud Hypervisor's
 * arch types), u64 fields are bigint.
 *
 * @module
 */

/** General-purpose registers. */
export interface Regs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rdi: bigint;
  rsp: bigint;
  rbp: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  rip: bigint;
  rflags: bigint;
}

/** A segment register as the CPU caches it. */
export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

/** GDTR/IDTR. */
export interface DescriptorTable {
  base: bigint;
  limit: number;
}

/** Segment, control and descriptor-table registers. */
export interface Sregs {
  cs: Segment;
  ds: Segment;
  es: Segment;
  fs: Segment;
  gs: Segment;
  ss: Segment;
  tr: Segment;
  ldt: Segment;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apicBase: bigint;
}

/** Why KVM_RUN returned, reduced to what the VMM acts on. */
export const enum ExitKind {
  /** Port I/O: see {@link VcpuExitData}. */
  Io = 1,
  /** MMIO outside RAM. */
  Mmio = 2,
  /** HLT (no in-kernel irqchip). */
  Hlt = 3,
  /** Kicked by a signal or immediate_exit. */
  Interrupted = 4,
  /** Triple fault. */
  Shutdown = 5,
  /** VM entry failed. */
  FailEntry = 6,
  /** KVM could not emulate something. */
  InternalError = 7,
  /** Guest asked for shutdown/reset through a system event. */
  SystemEvent = 8,
  /** Anything else. */
  Other = 9,
}

/**
 * The data of the last exit, read in place from the shared kvm_run page:
 * nothing is allocated per exit.
 */
export interface VcpuExitData {
  /** The raw exit reason. */
  readonly reason: number;
  /** I/O port. */
  readonly ioPort: number;
  /** Access size in bytes (1, 2, 4). */
  readonly ioSize: number;
  /** True for OUT. */
  readonly ioIsWrite: boolean;
  /** Repeat count (string I/O). */
  readonly ioCount: number;
  /** The I/O data for count 1 (sized to ioSize). */
  ioData(): Uint8Array;
  /** The data of repetition i of string I/O (sized to ioSize). */
  ioDataAt(i: number): Uint8Array;
  /** MMIO guest-physical address. */
  readonly mmioAddr: number;
  /** MMIO length. */
  readonly mmioLen: number;
  /** True for writes. */
  readonly mmioIsWrite: boolean;
  /** The MMIO data bytes (sized to mmioLen). */
  mmioData(): Uint8Array;
  /** Hardware entry failure reason. */
  readonly failEntryReason: bigint;
  /** Internal error sub-code. */
  readonly internalSuberror: number;
  /** System event type (a {@link SystemEventType}). */
  readonly systemEventType: number;
}

/** What a system event exit asks for (KVM_SYSTEM_EVENT_* numbers). */
export const enum SystemEventType {
  /** Power off. */
  Shutdown = 1,
  /** Reset (reboot). */
  Reset = 2,
  /** The guest crashed (a panic notifier). */
  Crash = 3,
}

/** A virtual CPU: owned by one thread, which calls run() in a loop. */
export interface Vcpu extends VcpuExitData {
  /** Its index in the VM. */
  readonly index: number;
  /** Enters the guest until the next exit. */
  run(): ExitKind;
  /** Reads general-purpose registers. */
  getRegs(): Regs;
  /** Writes general-purpose registers. */
  setRegs(regs: Regs): void;
  /** Reads special registers. */
  getSregs(): Sregs;
  /** Writes special registers. */
  setSregs(sregs: Sregs): void;
  /** Sets or clears immediate_exit (kick protocol). */
  setImmediateExit(on: boolean): void;
  /**
   * Hands the guest's writes to coalesced ports (see {@link Vm.coalescePio})
   * that wait in the VM's ring to `write`, oldest first, and frees their
   * entries. Call it under the lock that orders device access, before
   * handling a port or MMIO exit. The data view is reused by the next call.
   *
   * @returns how many writes it handed over
   */
  drainCoalesced?(write: (port: number, data: Uint8Array) => void): number;
}

/** A GSI routing entry: an interrupt controller pin, or an MSI message. */
export type GsiRoute =
  | { gsi: number; kind: "irqchip"; irqchip: number; pin: number }
  | { gsi: number; kind: "msi"; addressLo: number; addressHi: number; data: number };

/** An ioeventfd registration: a guest write at addr signals fd without an exit. */
export interface IoEventFd {
  /** Guest address (port or MMIO address). */
  addr: number;
  /** Access length to match (0 = any). */
  len: number;
  /** eventfd to signal. */
  fd: number;
  /** PIO bus instead of MMIO. */
  pio?: boolean;
  /** Only match writes of this value. */
  datamatch?: bigint;
}

/**
 * What the machine asks of a VM once it exists: guest memory slots and the
 * fd-based paths between devices and the guest (ioeventfd in, irqfd and GSI
 * routing out). KVM's KvmVm is one implementation.
 */
export interface Vm {
  /** Maps host memory into the guest at a slot. */
  setUserMemoryRegion(
    slot: number,
    region: { guestAddr: number; size: number; hostAddr: bigint; flags?: number },
  ): void;
  /** Raises GSI `gsi` whenever `fd` is written (or with deassign, stops). */
  irqfd(fd: number, gsi: number, deassign?: boolean): void;
  /** Signals an eventfd on a guest write instead of exiting (or with deassign, stops). */
  ioeventfd(e: IoEventFd, deassign?: boolean): void;
  /** Replaces the whole GSI routing table. */
  setGsiRouting(routes: readonly GsiRoute[]): void;
  /**
   * Lets the guest's writes to ports `port .. port+size-1` queue in a ring
   * instead of exiting (KVM's coalesced PIO; QEMU does it for the RTC's
   * index port): for a register whose write only latches a value that a
   * later access, which does exit, uses. The vCPU threads replay the ring
   * before each exit they handle ({@link Vcpu.drainCoalesced}). Reads still
   * exit.
   *
   * @returns false where the host cannot (the writes keep exiting)
   */
  coalescePio?(port: number, size: number): boolean;
  /** Releases the VM. */
  close(): void;
}

/** A level-triggered interrupt input by GSI, as a backend delivers it. */
export interface InterruptLine {
  /** Sets the line's level. */
  set(level: boolean): void;
}

/**
 * What a vCPU thread gets from the hypervisor backend: its vCPU and the
 * VM's interrupt lines. Built in the thread itself from a
 * {@link VcpuBackendSpec}, so the vCPU code never names a backend.
 */
export interface VcpuThreadBackend {
  /** This thread's vCPU. */
  readonly vcpu: Vcpu;
  /** The interrupt line of a GSI (one object per GSI; cache it). */
  irqLine(gsi: number): InterruptLine;
}

/**
 * Where a vCPU thread finds its backend: a module exporting
 * `factory(data): VcpuThreadBackend`, and postMessage-able data (fds, host
 * addresses) to build it from.
 */
export interface VcpuBackendSpec {
  /** Module URL. */
  readonly module: string;
  /** Name of the exported factory. */
  readonly factory: string;
  /** Its argument. */
  readonly data: unknown;
}
