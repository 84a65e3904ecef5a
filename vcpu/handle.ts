/**
 * The main thread's side of a vCPU thread: start, pause, resume, stop and
 * kick a Worker that is usually blocked inside KVM_RUN.
 *
 * A Worker blocked in a synchronous FFI call cannot be terminated, so a
 * kick is a SIGUSR2 sent to its thread (KVM_RUN returns EINTR) plus
 * kvm_run.immediate_exit (which covers the window before it re-enters).
 * SIGUSR1 is never used: Deno answers it by opening its inspector.
 *
 * @module
 */
import { SIGUSR2, tgkill } from "../sys/thread.ts";
import { hostBuffer } from "../sys/fd.ts";
import { workerUrl } from "../sys/worker_url.ts";
import { kvm_run } from "../kvm/abi.ts";
import type { VcpuHandleData } from "../kvm/vm.ts";
import type { DeviceSpec } from "../devices/device_spec.ts";
import type { BigLockState } from "../devices/shared_state.ts";
import type { GuestMemoryLayout } from "../memory/guest_memory.ts";
import { VCPU_STATE, VCPU_TID, VcpuRunState, type VmControl } from "./shared_state.ts";
import type { VcpuInit, VcpuMessage } from "./worker.ts";
import { traceMark } from "../sys/start_trace.ts";

let signalInstalled = false;

/** Installs a no-op SIGUSR2 handler so kicks interrupt syscalls instead of killing us. */
export function installKickHandler(): void {
  if (signalInstalled) return;
  signalInstalled = true;
  Deno.addSignalListener("SIGUSR2", kickNoop);
}

function kickNoop(): void {}

/** Options for a vCPU thread. */
export interface VcpuThreadOptions {
  /** VM fd. */
  vmFd: number;
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
}

/**
 * One vCPU Worker.
 *
 * @example
 * ```ts ignore
 * const t = new VcpuThread(handle, opts);
 * await t.ready;
 * t.start();
 * ```
 */
export class VcpuThread {
  /** The vCPU. */
  readonly handle: VcpuHandleData;
  /** Resolves once the Worker has built its devices. */
  readonly ready: Promise<void>;
  /** Resolves when the Worker has left its loop. */
  readonly exited: Promise<void>;
  /** Set when the Worker failed. */
  error: string | undefined;
  readonly #worker: Worker;
  readonly #ctl: VmControl;
  readonly #run: DataView;

  /**
   * Spawns the Worker.
   *
   * @param handle vCPU fd and kvm_run mapping
   * @param opts shared VM pieces
   */
  constructor(handle: VcpuHandleData, opts: VcpuThreadOptions) {
    installKickHandler();
    this.handle = handle;
    this.#ctl = opts.control;
    this.#run = new DataView(hostBuffer(handle.runAddr, handle.runSize));
    traceMark(`vcpu-${handle.index} Worker requested`);
    this.#worker = new Worker(workerUrl(new URL("./worker.ts", import.meta.url)), {
      type: "module",
      name: `vcpu-${handle.index}`,
    });
    let readyResolve!: () => void, readyReject!: (e: Error) => void, exitedResolve!: () => void;
    this.ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.exited = new Promise((res) => exitedResolve = res);
    this.#worker.onmessage = (e: MessageEvent<VcpuMessage>) => {
      const m = e.data;
      if (m.type === "ready") {
        const name = `vcpu-${handle.index}`;
        traceMark(`${name} isolate created`, m.times.created);
        traceMark(`${name} modules loaded`, m.times.loaded);
        traceMark(`${name} devices built, ready`, m.times.ready);
        readyResolve();
      } else if (m.type === "exited") exitedResolve();
      else {
        this.error = m.message;
        readyReject(new Error(`vcpu-${handle.index}: ${m.message}`));
        exitedResolve();
      }
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      this.error = e.message;
      readyReject(new Error(`vcpu-${handle.index}: ${e.message}`));
      exitedResolve();
    };
    const init: VcpuInit = {
      handle,
      vmFd: opts.vmFd,
      memory: opts.memory,
      control: opts.control.buffer,
      lock: opts.lock,
      devices: opts.devices.map((d) => ({ ...d, module: workerUrl(d.module) })),
      consoleFd: opts.consoleFd,
      affinity: opts.affinity,
      rtPriority: opts.rtPriority,
      logUnclaimed: opts.logUnclaimed,
      onHlt: opts.onHlt,
    };
    this.#worker.postMessage(init);
  }

  #stateIdx(): number {
    return this.#ctl.vcpuWord(this.handle.index, VCPU_STATE);
  }

  /** The thread's run state. */
  get state(): VcpuRunState {
    return Atomics.load(this.#ctl.words, this.#stateIdx());
  }

  /** The OS thread id (0 until ready). */
  get tid(): number {
    return Atomics.load(this.#ctl.words, this.#ctl.vcpuWord(this.handle.index, VCPU_TID));
  }

  #set(s: VcpuRunState): void {
    Atomics.store(this.#ctl.words, this.#stateIdx(), s);
    Atomics.notify(this.#ctl.words, this.#stateIdx());
  }

  /** Lets the vCPU enter the guest. */
  start(): void {
    this.#set(VcpuRunState.Running);
  }

  /** Forces the thread out of KVM_RUN soon (state is looked at after). */
  kick(): void {
    this.#run.setUint8(kvm_run.fields.immediate_exit, 1);
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
      if (r.async) await r.value;
      else if (s === VcpuRunState.PauseRequested) this.kick();
    }
  }

  /** Resumes a paused vCPU. */
  resume(): void {
    if (this.state === VcpuRunState.Paused || this.state === VcpuRunState.PauseRequested) {
      this.#set(VcpuRunState.Running);
    }
  }

  /** Asks the vCPU to leave its loop, kicks it, waits, and ends the Worker. */
  async stop(): Promise<void> {
    if (this.state !== VcpuRunState.Stopped) {
      this.#set(VcpuRunState.StopRequested);
      let done = false;
      this.exited.then(() => done = true);
      // Kick until it has left KVM_RUN: a signal may land just before it enters.
      while (!done) {
        this.kick();
        await Promise.race([this.exited, new Promise((r) => setTimeout(r, 20))]);
      }
    }
    this.#worker.terminate();
  }
}
