/**
 * Shared control words between the main thread and vCPU Workers: one
 * Int32Array over a SharedArrayBuffer, so control needs no postMessage round
 * trip and is visible inside a vCPU loop that never yields to its event loop.
 *
 * @module
 */
import type { SystemEvents } from "../devices/legacy/system_events.ts";
import { EXIT_CODE_POWEROFF, EXIT_CODE_REBOOT } from "./exit_codes.ts";

/** What the VM as a whole is doing (word VM_STATE). */
export const enum VmState {
  /** Guest running. */
  Running = 0,
  /** Guest asked to power off. */
  PowerOff = 1,
  /** Guest asked to reboot. */
  Reset = 2,
  /** Guest wrote the debug-exit port; EXIT_CODE holds the code. */
  DebugExit = 3,
  /** A vCPU hit a fatal exit (triple fault, entry failure, internal error). */
  Crashed = 4,
  /** The VMM asked everything to stop (Ctrl-A x, a signal, an API call). */
  Stopped = 5,
}

/** What one vCPU thread is doing, and what it is asked to do. */
export const enum VcpuRunState {
  /** Worker starting. */
  Starting = 0,
  /** In its KVM_RUN loop. */
  Running = 1,
  /** Asked to pause. */
  PauseRequested = 2,
  /** Paused, waiting on its state word. */
  Paused = 3,
  /** Asked to stop. */
  StopRequested = 4,
  /** Left its loop; the Worker can be terminated. */
  Stopped = 5,
}

/** Word indexes in the VM control array. */
export const VM_STATE = 0;
/** Process exit code chosen by the event that stopped the VM. */
export const VM_EXIT_CODE = 1;
/** Number of vCPUs that have left their loop. */
export const VM_STOPPED_VCPUS = 2;
/**
 * Non-zero: vCPU threads do not count exits by kind (read once when a vCPU
 * thread starts; the PIO exit benchmark compares both).
 */
export const VM_STATS_OFF = 3;
/** First per-vCPU block. */
const VCPU_BASE = 8;
/** Words per vCPU. */
const VCPU_WORDS = 16;
/** Per-vCPU: run state. */
export const VCPU_STATE = 0;
/** Per-vCPU: kernel thread id (for tgkill). */
export const VCPU_TID = 1;
/** Per-vCPU: exits handled (for tests and stats; wraps). */
export const VCPU_EXITS = 2;
/** Per-vCPU: when its first KVM_RUN began, µs since the epoch, high 32 bits (0: not yet). */
export const VCPU_FIRST_RUN_HI = 3;
/** Per-vCPU: the low 32 bits of the same. */
export const VCPU_FIRST_RUN_LO = 4;
/**
 * Per-vCPU: first of 10 exit counters indexed by `ExitKind` (1 Io .. 9 Other;
 * word 0 unused), written only by the vCPU's own thread (wrap at 2^32).
 */
export const VCPU_EXIT_KINDS = 6;

/**
 * The VM control block.
 *
 * @example
 * ```ts
 * import { VmControl } from "./vm_control.ts";
 * const ctl = new VmControl(new SharedArrayBuffer(VmControl.bytes(2)));
 * ctl.requestStop(3, 7);
 * ```
 */
export class VmControl {
  /** The words. */
  readonly words: Int32Array<SharedArrayBuffer>;
  /** Ends this instance's {@link waitStopped} when this thread stops the VM. */
  #stopped: (() => void) | null = null;

  /** @param sab buffer of at least {@link VmControl.bytes} bytes */
  constructor(sab: SharedArrayBuffer) {
    this.words = new Int32Array(sab);
  }

  /**
   * @param cpus vCPU count
   * @returns bytes needed
   */
  static bytes(cpus: number): number {
    return (VCPU_BASE + cpus * VCPU_WORDS) * 4;
  }

  /** The shared buffer, to post to Workers. */
  get buffer(): SharedArrayBuffer {
    return this.words.buffer;
  }

  /**
   * Index of a per-vCPU word.
   *
   * @param cpu vCPU index
   * @param word VCPU_STATE, VCPU_TID, ...
   * @returns index into words
   */
  vcpuWord(cpu: number, word: number): number {
    return VCPU_BASE + cpu * VCPU_WORDS + word;
  }

  /** The VM state. */
  get state(): VmState {
    return Atomics.load(this.words, VM_STATE);
  }

  /** The exit code that goes with the state. */
  get exitCode(): number {
    return Atomics.load(this.words, VM_EXIT_CODE);
  }

  /**
   * Records when a vCPU's first KVM_RUN begins (later calls are ignored), so
   * the main thread can report start-up latency. Called once per vCPU, off
   * the exit path.
   *
   * @param cpu vCPU index
   * @param epochMs `performance.timeOrigin + performance.now()` of the caller
   */
  markFirstRun(cpu: number, epochMs: number): void {
    const us = Math.round(epochMs * 1000);
    const hi = Math.floor(us / 2 ** 32);
    const lo = (us - hi * 2 ** 32) | 0;
    const hiIdx = this.vcpuWord(cpu, VCPU_FIRST_RUN_HI);
    if (Atomics.load(this.words, hiIdx) !== 0) return;
    Atomics.store(this.words, this.vcpuWord(cpu, VCPU_FIRST_RUN_LO), lo);
    Atomics.store(this.words, hiIdx, hi);
  }

  /**
   * When a vCPU's first KVM_RUN began.
   *
   * @param cpu vCPU index
   * @returns milliseconds since the epoch (µs resolution), or undefined before it ran
   */
  firstRunEpochMs(cpu: number): number | undefined {
    const hi = Atomics.load(this.words, this.vcpuWord(cpu, VCPU_FIRST_RUN_HI));
    if (hi === 0) return undefined;
    const lo = Atomics.load(this.words, this.vcpuWord(cpu, VCPU_FIRST_RUN_LO)) >>> 0;
    return (hi * 2 ** 32 + lo) / 1000;
  }

  /**
   * Moves the VM out of Running (first caller wins) and wakes waiters.
   *
   * @param state why it stops
   * @param exitCode process exit code to report
   * @returns whether this call made the transition
   */
  requestStop(state: VmState, exitCode: number): boolean {
    if (Atomics.compareExchange(this.words, VM_STATE, VmState.Running, -1) !== VmState.Running) {
      return false;
    }
    Atomics.store(this.words, VM_EXIT_CODE, exitCode);
    Atomics.store(this.words, VM_STATE, state);
    Atomics.notify(this.words, VM_STATE);
    this.#stopped?.();
    return true;
  }

  /**
   * The device-facing events that end the VM, mapped to states and exit
   * codes once for every thread (vCPU Workers and the main loop).
   *
   * @returns reset, shutdown and isa-debug-exit handlers
   */
  systemEvents(): SystemEvents {
    return {
      reset: () => this.requestStop(VmState.Reset, EXIT_CODE_REBOOT),
      shutdown: () => this.requestStop(VmState.PowerOff, EXIT_CODE_POWEROFF),
      exit: (code) => this.requestStop(VmState.DebugExit, code),
    };
  }

  /**
   * Records that a vCPU thread has left its loop, and wakes whoever waits
   * on its state or on the stopped count.
   *
   * @param cpu vCPU index
   */
  markVcpuStopped(cpu: number): void {
    const i = this.vcpuWord(cpu, VCPU_STATE);
    Atomics.store(this.words, i, VcpuRunState.Stopped);
    Atomics.notify(this.words, i);
    Atomics.add(this.words, VM_STOPPED_VCPUS, 1);
    Atomics.notify(this.words, VM_STOPPED_VCPUS);
  }

  /**
   * Waits (without blocking the event loop) until the VM leaves Running.
   * Not announced to the main loop as a wait (mainloop/deno_work.ts: it
   * lasts the VM's life): the thread that stops the VM is a vCPU Worker, whose
   * `exited` message then brings the main thread's event loop its turn, or
   * this thread, whose {@link requestStop} on this instance ends the wait
   * directly.
   *
   * @returns the new state
   */
  async waitStopped(): Promise<VmState> {
    for (;;) {
      const s = Atomics.load(this.words, VM_STATE);
      if (s !== VmState.Running && s !== -1) return s;
      const w = Atomics.waitAsync(this.words, VM_STATE, s);
      if (!w.async) continue;
      const here = Promise.withResolvers<void>();
      this.#stopped = here.resolve;
      try {
        // requestStop notified w before resolving `here`: w settles too, later.
        await Promise.race([w.value, here.promise]);
      } finally {
        this.#stopped = null;
      }
    }
  }
}
