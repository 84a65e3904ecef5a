/**
 * The main thread's side of a vCPU thread: start, pause, resume, stop and
 * kick a Worker that is usually blocked inside KVM_RUN.
 *
 * A Worker blocked in a synchronous FFI call cannot be terminated, so a
 * kick is a SIGUSR2 sent to its thread (KVM_RUN returns EINTR) plus
 * kvm_run.immediate_exit (which covers the window before it re-enters).
 * SIGUSR1 is never used: Deno answers it by opening its inspector (and
 * main.ts locks it out: sys/no_inspector.ts).
 *
 * @module
 */
import { SIGUSR2, tgkill } from "../sys/thread.ts";
import { installKickSignal } from "../sys/signals.ts";
import type { VcpuBackendSpec } from "../hypervisor/types.ts";
import type { DeviceSpec } from "../devices/device_spec.ts";
import type { BigLockState } from "../devices/big_lock.ts";
import type { GuestMemoryLayout } from "../memory/guest_memory.ts";
import { VCPU_STATE, VCPU_TID, VcpuRunState, type VmControl } from "./vm_control.ts";
import type { VcpuInit, VcpuMessage } from "./worker.ts";
import { traceMark } from "../sys/start_trace.ts";
import { awaitDeno } from "../mainloop/deno_work.ts";
import type { EventLoop } from "../mainloop/types.ts";
import { moduleUrlFor, takePrestartedVcpuWorker, vcpuWorkerUrl } from "./prestart.ts";

/** How long {@link VcpuThread.stop} waits for a stopped Worker's last message. */
const LAST_WORD_MS = 10_000;

/** Options for a vCPU thread. */
export interface VcpuThreadOptions {
  /** Where the thread gets its vCPU (the hypervisor backend). */
  backend: VcpuBackendSpec;
  /**
   * Makes the vCPU's next (or current) entry return at once (KVM's
   * immediate_exit); called from this thread when kicking.
   */
  requestExit: () => void;
  /** Guest RAM. */
  memory: GuestMemoryLayout;
  /** VM control block. */
  control: VmControl;
  /** The VM's big lock. */
  lock: BigLockState;
  /** Devices. */
  devices: readonly DeviceSpec[];
  /** Guest console fd. */
  consoleFd: number;
  /** CPU pinning. */
  affinity?: readonly number[];
  /** SCHED_FIFO priority. */
  rtPriority?: number;
  /** Log unclaimed accesses. */
  logUnclaimed?: boolean;
  /** HLT policy without an irqchip. */
  onHlt?: "resume" | "stop";
  /**
   * The main loop, whose timers pace {@link VcpuThread.stop}'s kicks; without
   * one, Deno's timers do (whose first use loads Deno's Node timer layer:
   * ~7 ms natively, a third of a second in the nested host, at every exit).
   */
  loop?: EventLoop;
}

/**
 * One vCPU Worker.
 *
 * @example
 * ```ts ignore
 * const t = new VcpuThread(0, opts);
 * await t.ready;
 * t.start();
 * ```
 */
export class VcpuThread {
  /** The vCPU's index. */
  readonly index: number;
  /** Resolves once the Worker has built its devices. */
  readonly ready: Promise<void>;
  /** Resolves when the Worker has left its loop. */
  readonly exited: Promise<void>;
  /** Set when the Worker failed. */
  error: string | undefined;
  readonly #worker: Worker;
  readonly #ctl: VmControl;
  readonly #requestExit: () => void;
  readonly #loop: EventLoop | undefined;

  /**
   * Spawns the Worker.
   *
   * @param index the vCPU's index
   * @param opts its backend and the shared VM pieces
   */
  constructor(index: number, opts: VcpuThreadOptions) {
    installKickSignal();
    this.index = index;
    this.#ctl = opts.control;
    this.#requestExit = opts.requestExit;
    this.#loop = opts.loop;
    traceMark(`vcpu-${index} Worker requested`);
    const pre = takePrestartedVcpuWorker(index);
    this.#worker = pre?.worker ??
      new Worker(vcpuWorkerUrl(), { type: "module", name: `vcpu-${index}` });
    let readyResolve!: () => void, readyReject!: (e: Error) => void, exitedResolve!: () => void;
    this.ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.exited = new Promise((res) => exitedResolve = res);
    this.#worker.onmessage = (e: MessageEvent<VcpuMessage>) => {
      const m = e.data;
      if (m.type === "ready") {
        const name = `vcpu-${index}`;
        traceMark(`${name} isolate created`, m.times.created);
        traceMark(`${name} modules loaded`, m.times.loaded);
        traceMark(`${name} backend module loaded`, m.times.backend);
        traceMark(`${name} devices built, ready`, m.times.ready);
        readyResolve();
      } else if (m.type === "exited") exitedResolve();
      else {
        this.error = m.message;
        readyReject(new Error(`vcpu-${index}: ${m.message}`));
        exitedResolve();
      }
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.error = e.message;
      readyReject(new Error(`vcpu-${index}: ${e.message}`));
      exitedResolve();
    };
    const init: VcpuInit = {
      index,
      backend: { ...opts.backend, module: moduleUrlFor(pre, opts.backend.module) },
      memory: opts.memory,
      control: opts.control.buffer,
      lock: opts.lock,
      devices: opts.devices.map((d) => ({ ...d, module: moduleUrlFor(pre, d.module) })),
      consoleFd: opts.consoleFd,
      affinity: opts.affinity,
      rtPriority: opts.rtPriority,
      logUnclaimed: opts.logUnclaimed,
      onHlt: opts.onHlt,
    };
    this.#worker.postMessage(init);
    traceMark(`vcpu-${index} backend and device modules served, init posted`);
  }

  #stateIdx(): number {
    return this.#ctl.vcpuWord(this.index, VCPU_STATE);
  }

  /** The thread's run state. */
  get state(): VcpuRunState {
    return Atomics.load(this.#ctl.words, this.#stateIdx());
  }

  /** The OS thread id (0 until ready). */
  get tid(): number {
    return Atomics.load(this.#ctl.words, this.#ctl.vcpuWord(this.index, VCPU_TID));
  }

  #set(s: VcpuRunState): void {
    Atomics.store(this.#ctl.words, this.#stateIdx(), s);
    Atomics.notify(this.#ctl.words, this.#stateIdx());
  }

  /**
   * Lets the vCPU enter the guest, or with `paused`, go straight to paused
   * (QEMU's `-S`: {@link resume} lets it run).
   *
   * @param paused start paused
   */
  start(paused = false): void {
    this.#set(paused ? VcpuRunState.PauseRequested : VcpuRunState.Running);
  }

  /** Forces the thread out of KVM_RUN soon (state is looked at after). */
  kick(): void {
    this.#requestExit();
    const tid = this.tid;
    if (tid > 0 && this.state !== VcpuRunState.Stopped) {
      try {
        tgkill(tid, SIGUSR2);
      } catch {
        // The thread may have just exited.
      }
    }
  }

  /** Asks the vCPU to pause and waits until it has. */
  async pause(): Promise<void> {
    if (this.state === VcpuRunState.Stopped) return;
    this.#set(VcpuRunState.PauseRequested);
    this.kick();
    const w = this.#ctl.words;
    const i = this.#stateIdx();
    for (;;) {
      const s = Atomics.load(w, i);
      if (s === VcpuRunState.Paused || s === VcpuRunState.Stopped) return;
      const r = Atomics.waitAsync(w, i, s, 1000);
      // Delivered in a turn of Deno's event loop: tell the main loop (deno_work.ts).
      if (r.async) await awaitDeno(r.value);
      else if (s === VcpuRunState.PauseRequested) this.kick();
    }
  }

  /** Resumes a paused vCPU. */
  resume(): void {
    if (this.state === VcpuRunState.Paused || this.state === VcpuRunState.PauseRequested) {
      this.#set(VcpuRunState.Running);
    }
  }

  /**
   * Asks the vCPU to leave its loop, kicks it, waits, and ends the Worker.
   *
   * The Worker is terminated only after its last message (`exited` or
   * `error`) has arrived: a Worker marks itself stopped in shared memory
   * before that message is delivered, and terminating it on the shared
   * state alone drops the message - the error a crashed vCPU reports.
   */
  async stop(): Promise<void> {
    let done = false;
    this.exited.then(() => done = true);
    if (this.state !== VcpuRunState.Stopped) this.#set(VcpuRunState.StopRequested);
    let stoppedAt = -1;
    while (!done) {
      if (this.state !== VcpuRunState.Stopped) {
        // Kick until it has left KVM_RUN: a signal may land just before it enters.
        this.kick();
      } else if (stoppedAt < 0) {
        stoppedAt = performance.now();
      } else if (performance.now() - stoppedAt > LAST_WORD_MS) {
        this.error ??= "the vCPU thread ended without reporting why";
        break;
      }
      await this.#exitedOrAfter(20);
    }
    this.#worker.terminate();
  }

  /** Resolves when the Worker has exited or `ms` have passed. */
  async #exitedOrAfter(ms: number): Promise<void> {
    const loop = this.#loop;
    if (loop === undefined) {
      let t: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.exited, new Promise((r) => t = setTimeout(r, ms))]);
      clearTimeout(t);
      return;
    }
    let fire!: () => void;
    const later = new Promise<void>((r) => fire = r);
    const timer = loop.timer("monotonic", fire);
    timer.mod(loop.now("monotonic") + ms * 1e6);
    try {
      await Promise.race([this.exited, later]);
    } finally {
      timer.del();
    }
  }
}
