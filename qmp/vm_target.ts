/**
 * The QMP target for a running {@link ControllableVm} (the builder's `Vm`),
 * and the bridge from its lifecycle events to QMP events with QEMU's
 * `SHUTDOWN`/`RESET` data.
 *
 * @module
 */
import type { QmpBlock, QmpCpu, QmpIothread, QmpNic, QmpRunState, QmpTarget } from "./target.ts";
import type { QmpServer } from "./server.ts";
import { libc } from "../sys/libc.ts";
import { closeFd, fstat, O_RDONLY, openFile } from "../sys/fd.ts";

/** What QMP needs from a VM (vm/vm.ts's `Vm` has this shape). */
export interface ControllableVm {
  /** `prelaunch`, `running`, `paused` or `shutdown`. */
  readonly status: string;
  /** Host thread ids of the vCPU threads. */
  readonly vcpuThreadIds: number[];
  /** I/O threads. */
  readonly iothreads: { id: number; name: string; tid: number }[];
  /** Disks. */
  readonly disks: { path: string; readOnly: boolean }[];
  /** Subscribes to a lifecycle event; returns the unsubscribe function. */
  on(type: string, listener: (type: string) => void): () => void;
  /** Starts the vCPUs (from prelaunch). */
  start(): Promise<void>;
  /** Pauses every vCPU. */
  pause(): Promise<void>;
  /** Resumes them. */
  resume(): void;
  /** Ends the VM with an exit code. */
  stop(exitCode?: number): void;
  /** Presses the ACPI power button. */
  powerdown(): boolean;
  /** Resets the machine. */
  reset(): void;
}

function imageSizes(path: string): { size: number; actual: number } {
  const fd = openFile(path, O_RDONLY);
  try {
    const st = fstat(fd);
    // A block device's st_size is 0: its end is its size.
    const size = st.size === 0 ? Number(libc.lseek(fd, 0n, 2)) : st.size;
    return { size, actual: st.blocks * 512 };
  } catch {
    return { size: 0, actual: 0 };
  } finally {
    closeFd(fd);
  }
}

/** Options for {@link VmQmpTarget}. */
export interface VmQmpTargetOptions {
  /** Exit code of the process after QMP `quit` (QEMU: 0). */
  quitExitCode?: number;
  /** x-query-denovmm-stats. */
  stats?: () => Record<string, unknown>;
  /** query-stats. */
  queryStats?: (target: "vm" | "vcpu") => unknown[];
  /** The guest name (`-name`). */
  name?: string;
  /** x-query-net. */
  nets?: () => QmpNic[];
  /** set_link. */
  setLink?: (name: string, up: boolean) => void;
  /** screendump. */
  screendump?: (filename: string, format: "ppm" | "png") => void;
  /** send-key. */
  sendKey?: (keys: (string | number)[], holdMs: number) => void;
}

/**
 * A {@link QmpTarget} over a VM.
 *
 * @example
 * ```ts ignore
 * const target = new VmQmpTarget(vm);
 * const qmp = QmpServer.listen(vm.loop, path, target);
 * target.bridgeEvents(qmp);
 * ```
 */
export class VmQmpTarget implements QmpTarget {
  readonly #vm: ControllableVm;
  readonly #o: VmQmpTargetOptions;
  /** A host-requested reset whose RESET event QMP already sent. */
  #hostReset = false;
  #quitting = false;
  stats?: () => Record<string, unknown>;
  queryStats?: (target: "vm" | "vcpu") => unknown[];
  nets?: () => QmpNic[];
  setLink?: (name: string, up: boolean) => void;
  screendump?: (filename: string, format: "ppm" | "png") => void;
  sendKey?: (keys: (string | number)[], holdMs: number) => void;

  /**
   * @param vm the VM
   * @param options quit exit code and statistics
   */
  constructor(vm: ControllableVm, options: VmQmpTargetOptions = {}) {
    this.#vm = vm;
    this.#o = options;
    this.stats = options.stats;
    this.queryStats = options.queryStats;
    this.nets = options.nets;
    this.setLink = options.setLink;
    this.screendump = options.screendump;
    this.sendKey = options.sendKey;
  }

  /** @returns QEMU's run state */
  status(): QmpRunState {
    const s = this.#vm.status;
    return s === "prelaunch" || s === "running" || s === "paused" || s === "shutdown"
      ? s
      : "internal-error";
  }

  /** @returns the guest name, if one was given */
  name(): string | undefined {
    return this.#o.name;
  }

  /** Pauses the vCPUs. */
  stop(): Promise<void> {
    return this.#vm.pause();
  }

  /** Resumes them; from prelaunch (`-S`) it starts them. */
  async cont(): Promise<void> {
    if (this.#vm.status === "prelaunch") await this.#vm.start();
    else this.#vm.resume();
  }

  /** Presses the power button. */
  powerdown(): void {
    this.#vm.powerdown();
  }

  /** Resets the machine. */
  reset(): void {
    this.#hostReset = true;
    this.#vm.reset();
  }

  /** Ends the VM (the server has sent the reply). */
  quit(): void {
    this.#quitting = true;
    this.#vm.stop(this.#o.quitExitCode ?? 0);
  }

  /** @returns vCPUs and their host threads */
  cpus(): QmpCpu[] {
    return this.#vm.vcpuThreadIds.map((threadId, index) => ({ index, threadId }));
  }

  /** @returns I/O threads */
  iothreads(): QmpIothread[] {
    return this.#vm.iothreads.map((io) => ({ id: io.name, threadId: io.tid }));
  }

  /** @returns disks */
  blocks(): QmpBlock[] {
    return this.#vm.disks.map((d, i) => {
      let sizes = { size: 0, actual: 0 };
      try {
        sizes = imageSizes(d.path);
      } catch {
        // The image vanished from its path; report what we know.
      }
      return {
        device: `virtio${i}`,
        file: d.path,
        readOnly: d.readOnly,
        size: sizes.size,
        actualSize: sizes.actual,
        direct: false,
      };
    });
  }

  /**
   * Sends the VM's own events to QMP clients: guest power-off and reboot,
   * crashes, resets, and ends not asked for over QMP.
   *
   * @param server the QMP server
   * @returns a function that stops the bridging
   */
  bridgeEvents(server: QmpServer): () => void {
    const shutdown = (guest: boolean, reason: string) => () =>
      server.emit("SHUTDOWN", { guest, reason });
    const offs = [
      this.#vm.on("poweroff", shutdown(true, "guest-shutdown")),
      this.#vm.on("debug-exit", shutdown(true, "guest-shutdown")),
      this.#vm.on("reboot", shutdown(true, "guest-reset")),
      this.#vm.on("crash", shutdown(true, "guest-panic")),
      this.#vm.on("stopped", () => {
        if (!this.#quitting) server.emit("SHUTDOWN", { guest: false, reason: "host-signal" });
      }),
      this.#vm.on("reset", () => {
        if (this.#hostReset) this.#hostReset = false;
        else server.emit("RESET", { guest: true, reason: "guest-reset" });
      }),
    ];
    return () => offs.forEach((off) => off());
  }
}
