/**
 * The CLI's running VM as the control plane sees it ({@link OperatedVm}),
 * over machine/run.ts's boot loop: one object across reboots, whose
 * Machine and devices are swapped at each boot.
 *
 * (A bridge until the builder's `Vm` drives the CLI; it has the same shape.)
 *
 * @module
 */
import type { MainLoop } from "../mainloop/main_loop.ts";
import type { Machine } from "../machine/machine.ts";
import type { AcpiPm } from "../devices/legacy/pc_ports.ts";
import type { BigLock } from "../devices/shared_state.ts";
import type { VmControl } from "../vcpu/shared_state.ts";
import { VmState } from "../vcpu/shared_state.ts";
import { EXIT_CODE_REBOOT } from "../vcpu/exit_codes.ts";
import type { OperatedVm } from "./control_plane.ts";

/** The CLI's VM across boots. */
export class CliVm implements OperatedVm {
  /** The main loop (lives across boots). */
  readonly loop: MainLoop;
  /** QMP run state. */
  status = "prelaunch";
  #machine: Machine | undefined;
  #pm: { pm: AcpiPm; lock: BigLock } | undefined;
  readonly #disks: { path: string; readOnly: boolean }[];
  readonly #events = new EventTarget();
  readonly #go = Promise.withResolvers<void>();
  /** Exit code asked by stop() before a machine existed. */
  stopCode: number | undefined;

  /**
   * @param loop the main loop
   * @param disks the disks, for query-block
   */
  constructor(loop: MainLoop, disks: { path: string; readOnly: boolean }[]) {
    this.loop = loop;
    this.#disks = disks;
  }

  /** Attaches this boot's machine and ACPI PM (main thread's view). */
  attach(m: Machine, pm: AcpiPm, lock: BigLock): void {
    this.#machine = m;
    this.#pm = { pm, lock };
    if (this.stopCode !== undefined) m.stop(this.stopCode);
  }

  /** Detaches it after the boot ended. */
  detach(): void {
    this.#machine = undefined;
    this.#pm = undefined;
  }

  /** Resolves once start() (or stop()) was called. */
  started(): Promise<void> {
    return this.#go.promise;
  }

  /** Host thread ids of the vCPU threads. */
  get vcpuThreadIds(): number[] {
    return this.#machine?.vcpus.map((v) => v.tid) ?? [];
  }

  /** The machine's control block. */
  get vcpuControl(): VmControl | undefined {
    return this.#machine?.control;
  }

  /** No iothreads are reported yet on this path. */
  get iothreads(): { id: number; name: string; tid: number }[] {
    return [];
  }

  /** The disks. */
  get disks(): { path: string; readOnly: boolean }[] {
    return this.#disks;
  }

  on(type: string, listener: (type: string) => void): () => void {
    const l = () => listener(type);
    this.#events.addEventListener(type, l);
    return () => this.#events.removeEventListener(type, l);
  }

  /** Sends a lifecycle event. */
  fire(type: string): void {
    this.#events.dispatchEvent(new Event(type));
  }

  start(): Promise<void> {
    if (this.status === "prelaunch") this.status = "running";
    this.#go.resolve();
    return Promise.resolve();
  }

  async pause(): Promise<void> {
    if (this.status !== "running" || !this.#machine) return;
    await Promise.all(this.#machine.vcpus.map((v) => v.pause()));
    this.status = "paused";
  }

  resume(): void {
    if (this.status !== "paused" || !this.#machine) return;
    for (const v of this.#machine.vcpus) v.resume();
    this.status = "running";
  }

  stop(exitCode?: number): void {
    this.stopCode = exitCode ?? 4;
    this.#machine?.stop(this.stopCode);
    this.#go.resolve();
  }

  powerdown(): boolean {
    const p = this.#pm;
    if (!p) return false;
    p.lock.lock();
    try {
      return p.pm.pressPowerButton();
    } finally {
      p.lock.unlock();
    }
  }

  reset(): void {
    this.#machine?.control.requestStop(VmState.Reset, EXIT_CODE_REBOOT);
  }
}
