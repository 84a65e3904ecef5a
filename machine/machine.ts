/**
 * The KVM part of a machine: the VM, guest RAM, the vCPU threads and the
 * device specs they build, and how a run ends. vm/builder.ts puts one
 * together from a configuration; flat-guest tests and benchmarks drive it
 * directly.
 *
 * @module
 */
import { Kvm } from "../kvm/kvm.ts";
import { KVM_CAP_TSC_DEADLINE_TIMER } from "../kvm/abi.ts";
import type { KvmVm } from "../kvm/vm.ts";
import { KvmVcpu } from "../kvm/vcpu.ts";
import { kvmVcpuBackendSpec } from "../kvm/vcpu_backend.ts";
import { GuestMemory } from "../memory/guest_memory.ts";
import type { DeviceSpec } from "../devices/device_spec.ts";
import type { EventLoop } from "../mainloop/types.ts";
import type { Regs, Sregs } from "../hypervisor/types.ts";
import { VcpuThread } from "../vcpu/handle.ts";
import { BigLock, type BigLockState } from "../devices/big_lock.ts";
import { VmControl, VmState } from "../vcpu/vm_control.ts";
import { EXIT_CODE_CRASH, EXIT_CODE_STOPPED } from "../vcpu/exit_codes.ts";
import { vcpuCpuid } from "./x86_cpu.ts";
import { hostCpuBrand } from "../sys/host_cpuid.ts";
import { traceEnabled, traceMark } from "../sys/start_trace.ts";
import { discardPrestartedVcpuWorkers, prestartVcpuWorkers } from "../vcpu/prestart.ts";
import { KVM_BACKEND_MODULE } from "./early_start.ts";

/** Per-vCPU initial state, applied before the vCPU thread starts. */
export type VcpuSetup = (vcpu: KvmVcpu, index: number) => void;

/** What a machine is made of. */
export interface MachineConfig {
  /** Guest RAM in bytes. */
  memoryBytes: number;
  /** vCPU count. */
  cpus: number;
  /** Devices every vCPU thread builds. */
  devices?: DeviceSpec[];
  /** Where guest console output goes (default 1, stdout). */
  consoleFd?: number;
  /** Create the in-kernel irqchip and PIT (Linux needs them; flat test guests don't). */
  irqchip?: boolean;
  /** HLT policy without an irqchip. */
  onHlt?: "resume" | "stop";
  /** Log unclaimed port/MMIO accesses once each. */
  logUnclaimed?: boolean;
  /** Pin vCPU i to affinity[i]. */
  affinity?: readonly (readonly number[])[];
  /** SCHED_FIFO priority for vCPU threads. */
  rtPriority?: number;
  /** Path of the KVM device. */
  kvmPath?: string;
  /** The main loop, whose timers pace stopping the vCPU threads (else Deno's timers do). */
  loop?: EventLoop;
}

/** How a run ended. */
export interface MachineExit {
  /** The VM's final state. */
  state: VmState;
  /** The process exit code it maps to. */
  exitCode: number;
  /** vCPU thread failures, if any. */
  errors: string[];
}

/** Identity-map and TSS addresses KVM (Intel) needs: just below the BIOS. */
const IDENTITY_MAP_ADDR = 0xfffbc000;
const TSS_ADDR = 0xfffbd000;

/**
 * A VM and its threads.
 *
 * @example
 * ```ts ignore
 * const m = Machine.create({ memoryBytes: 64 << 20, cpus: 1 });
 * m.memory.write(guest.loadAddr, guest.code);
 * await m.setup((vcpu, i) => setRealModeEntry(vcpu, i, guest.entry));
 * const exit = await m.run();
 * await m.close();
 * ```
 */
export class Machine {
  /** The KVM system handle. */
  readonly kvm: Kvm;
  /** The VM. */
  readonly vm: KvmVm;
  /** Guest RAM. */
  readonly memory: GuestMemory;
  /** Control block shared with the vCPU threads. */
  readonly control: VmControl;
  /** The big lock, shared by every thread touching devices (this thread's handle). */
  readonly lock: BigLock;
  /** The big lock's shared words, for other threads. */
  readonly lockState: BigLockState;
  /** The vCPU threads. */
  readonly vcpus: VcpuThread[] = [];
  readonly #config: MachineConfig;
  #vcpuSetupDone = false;
  /** performance.now() when create() began and when the vCPU threads were ready (trace). */
  #createdAt = 0;
  #readyAt = 0;

  private constructor(kvm: Kvm, vm: KvmVm, memory: GuestMemory, config: MachineConfig) {
    this.kvm = kvm;
    this.vm = vm;
    this.memory = memory;
    this.#config = config;
    this.control = new VmControl(new SharedArrayBuffer(VmControl.bytes(config.cpus)));
    this.lockState = { sab: new SharedArrayBuffer(BigLock.BYTES), offset: 0 };
    this.lock = new BigLock(this.lockState);
  }

  /**
   * Opens KVM, creates the VM and its memory (not the vCPU threads yet).
   *
   * @param config the machine
   * @returns the machine
   */
  static create(config: MachineConfig): Machine {
    const createdAt = performance.now();
    const kvm = Kvm.open(config.kvmPath);
    const vm = kvm.createVm();
    if (config.irqchip) {
      vm.setIdentityMapAddr(IDENTITY_MAP_ADDR);
      vm.setTssAddr(TSS_ADDR);
      vm.createIrqchip();
      vm.createPit2();
    }
    const memory = GuestMemory.allocate(config.memoryBytes);
    memory.layout.regions.forEach((r, slot) => vm.setUserMemoryRegion(slot, r));
    const m = new Machine(kvm, vm, memory, config);
    m.#createdAt = createdAt;
    traceMark(
      "KVM set-up (VM, irqchip, PIT, guest RAM) starts",
      performance.timeOrigin + createdAt,
    );
    traceMark("KVM set-up done");
    return m;
  }

  /**
   * Starts the vCPU Workers of a machine about to be created, so they load
   * their modules while this thread sets up the rest (vcpu/prestart.ts);
   * {@link setup} takes them.
   *
   * @param cpus the machine's vCPU count
   * @param deviceModules file URLs of the device modules its specs name
   */
  static prestart(cpus: number, deviceModules: readonly string[]): void {
    prestartVcpuWorkers(cpus, [KVM_BACKEND_MODULE, ...deviceModules]);
  }

  /** Ends prestarted vCPU Workers that no machine took. */
  static discardPrestarted(): void {
    discardPrestartedVcpuWorkers();
  }

  /**
   * Adds a device every vCPU thread will build (before {@link setup}).
   *
   * @param spec the device
   */
  addDevice(spec: DeviceSpec): void {
    if (this.#vcpuSetupDone) throw new Error("Devices must be added before setup()");
    (this.#config.devices ??= []).push(spec);
  }

  /**
   * Creates the vCPUs, spawns their Workers (which build the devices, then
   * wait for {@link run}) and sets each vCPU's initial state on this thread.
   *
   * `setup` is either the per-vCPU set-up or `{ prepare }`, called once the
   * Workers are on their way to return it (or a promise of it): what the
   * state depends on (a kernel to load into guest RAM) then overlaps their
   * start, which takes ~15 ms natively and a few hundred ms in the nested
   * KVM host.
   *
   * @param setup per-vCPU register set-up, or a function that prepares it
   */
  async setup(
    setup: VcpuSetup | { prepare: () => VcpuSetup | Promise<VcpuSetup> },
  ): Promise<void> {
    if (this.#vcpuSetupDone) throw new Error("Machine already set up");
    this.#vcpuSetupDone = true;
    const c = this.#config;
    const supported = this.kvm.supportedCpuid();
    const tscDeadline = this.kvm.checkExtension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
    const brand = hostCpuBrand();
    const vcpus: KvmVcpu[] = [];
    for (let i = 0; i < c.cpus; i++) {
      const handle = this.vm.createVcpu(i);
      const vcpu = new KvmVcpu(handle);
      // Without CPUID the guest has no long mode (KVM refuses EFER.LME).
      vcpu.setCpuid(vcpuCpuid(supported, i, c.cpus, { tscDeadline, brand }));
      vcpus.push(vcpu);
      this.vcpus.push(
        new VcpuThread(i, {
          backend: kvmVcpuBackendSpec({ handle, vmFd: this.vm.fd, irqchip: !!c.irqchip }),
          requestExit: () => vcpu.setImmediateExit(true),
          memory: this.memory.layout,
          control: this.control,
          lock: this.lockState,
          devices: c.devices ?? [],
          consoleFd: c.consoleFd ?? 1,
          affinity: c.affinity?.[i],
          rtPriority: c.rtPriority,
          logUnclaimed: c.logUnclaimed,
          onHlt: c.onHlt,
          loop: c.loop,
        }),
      );
    }
    // A vCPU's ioctls from this thread are safe while its Worker starts: it
    // enters KVM_RUN only at run(), and KVM serializes a vCPU's ioctls.
    const ready = Promise.all(this.vcpus.map((v) => v.ready));
    ready.catch(() => {}); // a failing prepare() is what the caller sees
    const perVcpu = typeof setup === "function" ? setup : await setup.prepare();
    vcpus.forEach((v, i) => perVcpu(v, i));
    await ready;
    this.#readyAt = performance.now();
    traceMark("all vCPU threads ready");
  }

  /**
   * Starts every vCPU and resolves when the VM stops (guest power-off, reset,
   * debug exit, crash, or {@link stop}); all vCPU threads have ended by then.
   *
   * @param options `paused`: the vCPUs start paused (until {@link resume})
   * @returns how it ended
   */
  async run(options: { paused?: boolean } = {}): Promise<MachineExit> {
    for (const v of this.vcpus) v.start(options.paused);
    // A vCPU Worker failing (not a guest event) stops the VM too.
    for (const v of this.vcpus) {
      v.exited.then(() => {
        if (v.error) this.control.requestStop(VmState.Crashed, EXIT_CODE_CRASH);
      });
    }
    const state = await this.control.waitStopped();
    traceMark("VM stopped (power-off, reset or stop seen by the main thread)");
    for (let i = 0; i < this.vcpus.length; i++) {
      const t = this.control.firstRunEpochMs(i);
      if (t !== undefined) traceMark(`vcpu-${i} first KVM_RUN`, t);
    }
    if (traceEnabled()) {
      const first = this.control.firstRunEpochMs(0);
      if (first !== undefined) {
        const ms = (first - performance.timeOrigin).toFixed(1);
        const at = (t: number) => t.toFixed(1);
        console.error(
          `denovmm: first KVM_RUN after ${ms} ms (epoch ${first.toFixed(3)}; ` +
            `Machine.create at ${at(this.#createdAt)} ms, vCPU threads ready at ${
              at(this.#readyAt)
            } ms)`,
        );
      }
    }
    await Promise.all(this.vcpus.map((v) => v.stop()));
    traceMark("vCPU threads joined");
    const errors = this.vcpus.filter((v) => v.error).map((v) => `vcpu-${v.index}: ${v.error}`);
    return { state, exitCode: this.control.exitCode, errors };
  }

  /** Pauses every vCPU (each has left KVM_RUN when this resolves). */
  async pause(): Promise<void> {
    await Promise.all(this.vcpus.map((v) => v.pause()));
  }

  /** Resumes paused vCPUs. */
  resume(): void {
    for (const v of this.vcpus) v.resume();
  }

  /**
   * Stops the VM from outside the guest.
   *
   * @param exitCode exit code to report
   */
  stop(exitCode = EXIT_CODE_STOPPED): void {
    this.control.requestStop(VmState.Stopped, exitCode);
  }

  /**
   * Ends vCPU threads that never ran (a build that failed after setup) and
   * releases fds. After run() resolved, the threads are gone already.
   */
  async close(): Promise<void> {
    if (this.control.state === VmState.Running) this.control.requestStop(VmState.Stopped, 0);
    await Promise.all(this.vcpus.map((v) => v.stop()));
    this.vm.close();
    this.kvm.close();
    traceMark("KVM closed");
    this.memory.close();
    traceMark("guest RAM unmapped");
  }
}

/**
 * Puts a vCPU in real mode at 0000:entry, as the test guests expect: flat
 * zero segments, SP below 0x7000 per vCPU, DI = vCPU index.
 *
 * @param vcpu the vCPU
 * @param index its index
 * @param entry IP
 */
export function setRealModeEntry(vcpu: KvmVcpu, index: number, entry: number): void {
  const s: Sregs = vcpu.getSregs();
  for (const seg of [s.cs, s.ds, s.es, s.fs, s.gs, s.ss]) {
    seg.base = 0n;
    seg.selector = 0;
    seg.limit = 0xffff;
  }
  vcpu.setSregs(s);
  const r: Regs = vcpu.getRegs();
  r.rip = BigInt(entry);
  r.rsp = BigInt(0x7000 - index * 0x400);
  r.rdi = BigInt(index);
  r.rflags = 2n;
  vcpu.setRegs(r);
}
