/**
 * Every exit a VMM's guest takes, counted by the host kernel: hist triggers
 * (Documentation/trace/histogram.rst) on KVM's tracepoints, keyed by the
 * hardware exit reason (`kvm_exit`: the exits KVM handles itself as well as
 * those it passes on), by the reason KVM_RUN returned to the VMM
 * (`kvm_userspace_exit`), and by I/O port (`kvm_pio`). The VMM's own
 * counters see only the second kind; the first is where a guest's time
 * between its instructions goes, whichever VMM runs it.
 *
 * Needs write access to tracefs (root: the nested host's L1 runs benchmarks
 * as root); the triggers count every VM on the host, so boots must not
 * overlap.
 *
 * @module
 */

const TRACEFS = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/** Names of the exit reasons a Linux boot takes, AMD SVM (asm/svm.h). */
const SVM_EXITS: Record<number, string> = {
  0x000: "read CR0",
  0x004: "read CR4",
  0x010: "write CR0",
  0x013: "write CR3",
  0x014: "write CR4",
  0x018: "write CR8",
  0x020: "read DR0",
  0x030: "write DR0",
  0x037: "write DR7",
  0x060: "external interrupt",
  0x061: "NMI",
  0x063: "INIT",
  0x064: "interrupt window (VINTR)",
  0x065: "CR0 selective write",
  0x06e: "RDTSC",
  0x06f: "RDPMC",
  0x072: "CPUID",
  0x073: "RSM",
  0x077: "PAUSE",
  0x078: "HLT",
  0x079: "INVLPG",
  0x07b: "I/O port (IOIO)",
  0x07c: "MSR",
  0x07f: "shutdown",
  0x081: "VMMCALL",
  0x087: "RDTSCP",
  0x089: "WBINVD",
  0x08b: "MWAIT",
  0x08d: "XSETBV",
  0x400: "nested page fault (NPF)",
  0x401: "AVIC incomplete IPI",
  0x402: "AVIC unaccelerated access",
};

/** The same for Intel VMX (asm/vmx.h). */
const VMX_EXITS: Record<number, string> = {
  0: "exception or NMI",
  1: "external interrupt",
  2: "triple fault",
  3: "INIT",
  4: "SIPI",
  7: "interrupt window",
  10: "CPUID",
  12: "HLT",
  14: "INVLPG",
  16: "RDTSC",
  18: "VMCALL",
  28: "CR access",
  29: "DR access",
  30: "I/O port",
  31: "MSR read",
  32: "MSR write",
  40: "PAUSE",
  44: "APIC access",
  45: "EOI induced",
  48: "EPT violation",
  49: "EPT misconfig",
  52: "preemption timer",
  54: "WBINVD",
  55: "XSETBV",
  56: "APIC write",
};

/** KVM_EXIT_* (linux/kvm.h) that a VMM sees. */
const KVM_EXITS: Record<number, string> = {
  0: "unknown",
  2: "io",
  5: "hlt",
  6: "mmio",
  7: "irq window open",
  8: "shutdown",
  9: "fail entry",
  10: "intr (signal)",
  12: "tpr access",
  17: "internal error",
  24: "system event",
};

/** The PC's PCI configuration ports: address (0xcf8) and data (0xcfc-0xcff). */
const PCI_CONFIG_PORTS = [0xcf8, 0xcfc, 0xcfd, 0xcfe, 0xcff];

/** What one traced run counted. */
export interface ExitCounts {
  /** Every exit, by hardware exit reason (named where known). */
  byReason: Map<string, number>;
  /** Exits that returned to the VMM, by KVM_EXIT_* reason. */
  toVmm: Map<string, number>;
  /** I/O port exits to the PCI configuration ports (both handle them in userspace). */
  pciConfig: number;
}

/**
 * Counts from a hist trigger's `hist` file: `{ key: value } hitcount: n`
 * lines, one key.
 *
 * @param text the file
 * @returns hitcount by the key's numeric value
 */
export function parseHist(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of text.matchAll(/^\{ \w+:\s+(\d+) \} hitcount:\s+(\d+)$/gm)) {
    out.set(Number(m[1]), (out.get(Number(m[1])) ?? 0) + Number(m[2]));
  }
  return out;
}

function named(counts: Map<number, number>, names: Record<number, string>, svm = false) {
  const out = new Map<string, number>();
  for (const [k, n] of counts) {
    // SVM's exits 0x40-0x5f are the exception vectors it intercepts.
    const name = names[k] ?? (svm && k >= 0x40 && k < 0x60 ? `exception ${k - 0x40}` : undefined) ??
      `reason ${k} (0x${k.toString(16)})`;
    out.set(name, (out.get(name) ?? 0) + n);
  }
  return out;
}

/** The three triggers, on their events. */
const TRIGGERS: [event: string, spec: string][] = [
  ["kvm_exit", "hist:keys=exit_reason:size=256"],
  ["kvm_userspace_exit", "hist:keys=reason:size=256"],
  ["kvm_pio", "hist:keys=port:size=1024"],
];

/** Counts a run's exits through the host's tracefs; see the module. */
export class KvmExitTrace {
  #events: string;
  #names: Record<number, string>;

  private constructor(events: string, names: Record<number, string>) {
    this.#events = events;
    this.#names = names;
  }

  /**
   * The host's KVM tracepoints, if this process may set triggers on them.
   *
   * @returns the trace, or why there is none
   */
  static open(): KvmExitTrace | string {
    let amd = false;
    try {
      amd = Deno.statSync("/sys/module/kvm_amd").isDirectory;
    } catch {
      // Intel, or no KVM module at all (then the events below are missing).
    }
    for (const root of TRACEFS) {
      const events = `${root}/events/kvm`;
      try {
        Deno.statSync(`${events}/kvm_exit/trigger`);
      } catch {
        continue;
      }
      const t = new KvmExitTrace(events, amd ? SVM_EXITS : VMX_EXITS);
      try {
        t.#clear();
        t.start();
        t.#clear();
      } catch (e) {
        return `cannot set a trigger in ${events} (${(e as Error).message}; it needs root)`;
      }
      return t;
    }
    return `no KVM tracepoints under ${TRACEFS.join(" or ")} (tracefs not mounted, or no KVM)`;
  }

  /** Starts counting from zero. */
  start(): void {
    this.#clear();
    for (const [event, spec] of TRIGGERS) {
      Deno.writeTextFileSync(`${this.#events}/${event}/trigger`, spec);
    }
  }

  /**
   * Stops counting.
   *
   * @returns what was counted since start()
   */
  stop(): ExitCounts {
    const read = (event: string) =>
      parseHist(Deno.readTextFileSync(`${this.#events}/${event}/hist`));
    const exits = read("kvm_exit");
    const toVmm = read("kvm_userspace_exit");
    const pio = read("kvm_pio");
    this.#clear();
    return {
      byReason: named(exits, this.#names, this.#names === SVM_EXITS),
      toVmm: named(toVmm, KVM_EXITS),
      pciConfig: PCI_CONFIG_PORTS.reduce((n, p) => n + (pio.get(p) ?? 0), 0),
    };
  }

  /** Removes the triggers (each removal fails harmlessly when it is not set). */
  #clear(): void {
    for (const [event, spec] of TRIGGERS) {
      try {
        Deno.writeTextFileSync(`${this.#events}/${event}/trigger`, `!${spec}`);
      } catch {
        // not set
      }
    }
  }
}
