/**
 * A virtual machine you drive from TypeScript: {@link createVm} checks a
 * {@link VmConfig}, builds the machine (vm/builder.ts) and hands back a
 * {@link Vm} to start, script through its serial console, pause, power
 * down, reset and wait for. The CLI and the control plane drive the same
 * object.
 *
 * @module
 */
import { type NicInfo, nicInfo, setNicLink } from "./nic_control.ts";
import { type VmConfig, VmConfigError } from "./config.ts";
import { closeResolved, releaseBootFiles, resolveConfig, type ResolvedConfig } from "./resolve.ts";
import { kernelCacheFills } from "./unpacked_kernel_source.ts";
import { dropCleanFilePages, trimMalloc } from "../sys/trim_memory.ts";
import { buildMachine, type BuiltMachine } from "./builder.ts";
import { SerialConsole, type VmSerial } from "./serial_console.ts";
import type { EventLoop, Timer } from "../mainloop/types.ts";
import { MainLoop, type MainLoopOptions } from "../mainloop/main_loop.ts";
import { LinearFramebuffer } from "../devices/display/linear_framebuffer.ts";
import type { VncDisplay } from "../ui/vnc/display.ts";
import { captureFramebuffer, type Screenshot } from "../ui/screenshot.ts";
import type { KeyboardPort, Ps2KeyboardInput } from "../ui/vnc/keyboard_input.ts";
import { type VmControl, VmState } from "../vcpu/vm_control.ts";
import { EXIT_CODE_CRASH, EXIT_CODE_REBOOT, EXIT_CODE_STOPPED } from "../vcpu/exit_codes.ts";
import { traceMark } from "../sys/start_trace.ts";
import { KernelLoaderError } from "../boot/kernel_loader_error.ts";

/**
 * Why a VM ended.
 *
 * @example
 * ```ts
 * import type { VmEndReason } from "./vm.ts";
 * const clean = (r: VmEndReason) => r === "poweroff";
 * console.log(clean("crash")); // false
 * ```
 */
export type VmEndReason = "poweroff" | "reboot" | "crash" | "stopped" | "debug-exit";

/**
 * How a VM ended.
 *
 * @example
 * ```ts
 * import type { VmExit } from "./vm.ts";
 * const report = (e: VmExit) => `${e.reason} (exit code ${e.exitCode})`;
 * console.log(report({ reason: "poweroff", exitCode: 0, errors: [] }));
 * ```
 */
export interface VmExit {
  /** Why. */
  readonly reason: VmEndReason;
  /** The process exit code it maps to (0 power-off, 2 crash, 4 stopped, 10 reboot, odd: debug-exit). */
  readonly exitCode: number;
  /** vCPU thread failures, if any. */
  readonly errors: readonly string[];
}

/**
 * What a VM is doing (QMP's `query-status` names).
 *
 * @example
 * ```ts
 * import type { VmStatus } from "./vm.ts";
 * const running = (s: VmStatus) => s === "running";
 * console.log(running("paused")); // false
 * ```
 */
export type VmStatus = "prelaunch" | "running" | "paused" | "shutdown";

/**
 * Events a {@link Vm} emits: `poweroff`, `reboot`, `crash`, `stopped` and
 * `debug-exit` when it ends; `pause`, `resume`, `powerdown` (the power
 * button was pressed) and `reset` (the machine was rebuilt) along the way.
 *
 * @example
 * ```ts
 * import type { Vm, VmEventType } from "./vm.ts";
 * export function logEvents(vm: Vm, types: VmEventType[]): void {
 *   for (const t of types) vm.on(t, (type) => console.error(`vm: ${type}`));
 * }
 * ```
 */
export type VmEventType = VmEndReason | "pause" | "resume" | "powerdown" | "reset";

const CREATE = Symbol("createVm");
const BUILD = Symbol("build");
/** How long after a machine is built its start-up memory is given back. */
const TRIM_DELAY_NS = 300e6;

const END_REASONS: Record<number, VmEndReason> = {
  [VmState.PowerOff]: "poweroff",
  [VmState.Reset]: "reboot",
  [VmState.DebugExit]: "debug-exit",
  [VmState.Crashed]: "crash",
  [VmState.Stopped]: "stopped",
};

/**
 * A built VM. Create it with {@link createVm}; the guest runs from
 * {@link Vm.start} until it powers off, reboots (unless `onReboot:
 * "restart"`), crashes or is stopped, which {@link Vm.wait} reports.
 *
 * @example
 * ```ts
 * import { createVm } from "./vm.ts";
 *
 * // Boots a kernel whose initramfs gives a shell on ttyS0, runs a command.
 * export async function kernelRelease(kernel: string, initrd: string): Promise<string> {
 *   await using vm = await createVm({ kernel, initrd, cpus: 2, memory: "512M" });
 *   await vm.start();
 *   await vm.serial.waitFor("# ", { timeoutMs: 60_000 });
 *   await vm.serial.write("uname -r; poweroff -f\n");
 *   const [, release] = await vm.serial.waitFor(/^(\d+\.\d+\S*)\r?\n/m);
 *   const end = await vm.wait();
 *   if (end.reason !== "poweroff") throw new Error(`guest ended with ${end.reason}`);
 *   return release;
 * }
 * ```
 */
export class Vm {
  /** The main loop: register fds, timers and bottom halves for services (QMP, VNC) here. */
  readonly loop: EventLoop;
  /** The guest's first serial port. */
  readonly serial: VmSerial;
  readonly #loop: MainLoop;
  readonly #serial: SerialConsole;
  readonly #rc: ResolvedConfig;
  readonly #looping: Promise<void>;
  #built: BuiltMachine | undefined;
  #status: VmStatus = "prelaunch";
  #started = false;
  #resetRequested = false;
  readonly #ended = Promise.withResolvers<VmExit>();
  readonly #events = new EventTarget();
  #closed = false;
  /** Video memory (one for the VM's life) and its VNC server, when asked for. */
  #framebuffer: LinearFramebuffer | undefined;
  #display: VncDisplay | undefined;
  #trimTimer: Timer | undefined;
  /** Keys sent from the host (sendKeys): the keyboard, the hold timer, the queue of calls. */
  #keyboard: Ps2KeyboardInput | undefined;
  #keyHoldTimer: Timer | undefined;
  #keyHold: (() => void) | undefined;
  #keys: Promise<void> = Promise.resolve();

  /**
   * Use {@link createVm}.
   *
   * @param rc the resolved configuration
   * @param loop the main loop it will own
   * @param key only createVm holds it
   */
  constructor(rc: ResolvedConfig, loop: MainLoop, key: symbol) {
    if (key !== CREATE) throw new TypeError("Use createVm() to make a Vm");
    this.#rc = rc;
    this.loop = this.#loop = loop;
    this.serial = this.#serial = new SerialConsole(loop);
    this.#looping = loop.run();
    // wait() may never be called: an unobserved end is not an error.
    this.#ended.promise.catch(() => {});
  }

  /**
   * Builds the machine (createVm's second half).
   *
   * @returns resolves when built
   */
  [BUILD](): Promise<void> {
    return this.#build();
  }

  async #build(): Promise<void> {
    const consoleFd = this.#rc.serial === "stdio" ? 1 : this.#rc.serialFd ?? this.#serial.writeFd;
    // --display / --vnc: video memory lives as long as the VM (a reset maps it again).
    const d = this.#rc.display;
    if (d) this.#framebuffer ??= LinearFramebuffer.create({ width: d.width, height: d.height });
    const built = await buildMachine(this.#rc, {
      loop: this.#loop,
      consoleFd,
      framebuffer: this.#framebuffer,
    });
    this.#built = built;
    this.#trimSoon();
    // With a virtio console, hvc0 is the console: input goes there.
    this.#serial.input = built.consoleInput ?? ((bytes) => built.serial.enqueueInput(bytes));
    if (!d?.vnc || !this.#framebuffer || this.#display) return;
    // The VNC server's module graph (and the Node layer's crypto, for
    // WebSocket) loads only when a display is served: start-up otherwise.
    const { startVncDisplay, VncStartError } = await import("../ui/vnc/display.ts");
    try {
      this.#display = await startVncDisplay(this.#loop, {
        vnc: d.vnc,
        password: d.password,
        framebuffer: this.#framebuffer.source,
        keyboard: await this.#keyboardInput(),
        tablet: () => this.#built?.tablet?.(),
        // Without a tablet, the PS/2 mouse on the current machine's i8042.
        mouse: {
          move: (dx, dy, dz, buttons) => {
            const b = this.#built;
            if (!b) return;
            b.machine.lock.lock();
            try {
              b.i8042.pushMouse(dx, dy, dz, buttons);
            } finally {
              b.machine.lock.unlock();
            }
          },
        },
      });
    } catch (e) {
      if (e instanceof VncStartError) throw new VmConfigError(e.message);
      throw e;
    }
  }

  /**
   * 300 ms after a machine is built (off the start-up path: it takes
   * 10-20 ms), gives back what start-up freed or will not run again:
   * glibc's free arena memory, clean pages of mapped files
   * (sys/trim_memory.ts; 15-20 MiB of RSS with one vCPU, bench/memory_bench.ts).
   */
  #trimSoon(): void {
    this.#trimTimer ??= this.#loop.timer("monotonic", () => {
      trimMalloc();
      dropCleanFilePages();
    });
    this.#trimTimer.mod(this.#loop.now("monotonic") + TRIM_DELAY_NS);
  }

  /** What the VM is doing. */
  get status(): VmStatus {
    return this.#status;
  }

  /** Host thread ids of the vCPU threads, by vCPU index (0 before they are ready). */
  get vcpuThreadIds(): number[] {
    return this.#built?.machine.vcpus.map((v) => v.tid) ?? [];
  }

  /**
   * The running machine's control block (its vCPU exit counters feed
   * statistics).
   *
   * @internal For the control plane (operate/); not part of the public API.
   */
  get vcpuControl(): VmControl | undefined {
    return this.#built?.machine.control;
  }

  /** The iothreads: index, thread name and host thread id. */
  get iothreads(): { id: number; name: string; tid: number }[] {
    const out = [];
    for (const [id, io] of this.#built?.iothreads ?? []) {
      out.push({ id, name: io.name, tid: io.tid });
    }
    return out;
  }

  /**
   * The NICs with their link state and counters (QMP `x-query-net`).
   *
   * @returns one entry per NIC
   */
  nics(): NicInfo[] {
    return nicInfo(this.#rc.net);
  }

  /**
   * Sets a NIC's link as the guest sees it (QMP `set_link`): the device
   * updates its config status and raises a config interrupt.
   *
   * @param name the NIC's `id=`, `netN` or tap name
   * @param up the link state
   * @throws NicControlError when no NIC has that name, or it uses vhost
   */
  setLink(name: string, up: boolean): void {
    setNicLink(this.#rc.net, name, up);
  }

  /** The current machine's i8042 keyboard (a reset builds a new machine). */
  #keyboardPort(): KeyboardPort {
    return {
      push: (bytes) => {
        const b = this.#built;
        if (!b) return bytes.length;
        b.machine.lock.lock();
        try {
          return b.i8042.pushKeyboard(bytes);
        } finally {
          b.machine.lock.unlock();
        }
      },
      translating: () => this.#built?.i8042.translating ?? true,
    };
  }

  /**
   * The one keyboard input of the VM, shared by VNC key events and
   * {@link Vm.sendKeys} so that their bytes reach the controller in order;
   * its modules load with the first use.
   */
  async #keyboardInput(): Promise<Ps2KeyboardInput> {
    if (this.#keyboard) return this.#keyboard;
    const { Ps2KeyboardInput } = await import("../ui/vnc/keyboard_input.ts");
    return this.#keyboard ??= new Ps2KeyboardInput(this.#loop, this.#keyboardPort());
  }

  /**
   * Presses keys on the guest's PS/2 keyboard together, holds them, and
   * releases them in reverse order, as QMP `send-key` does:
   * `["ctrl", "alt", "delete"]`, `["shift", "a"]`, or QEMU key numbers.
   * Calls run one after another.
   *
   * @param keys QEMU key names (`QKeyCode`: `a`, `ret`, `ctrl`, `f1`, `kp_enter`, ...) or key numbers (`qnum`)
   * @param options `holdMs`: how long they stay pressed (QEMU's default 100)
   * @returns resolves once the keys are released; rejects with a TypeError
   *   naming a key this keyboard does not have (nothing is pressed)
   * @example
   * ```ts ignore
   * await vm.sendKeys(["ctrl", "alt", "delete"]);
   * ```
   */
  sendKeys(keys: readonly (string | number)[], options: { holdMs?: number } = {}): Promise<void> {
    const holdMs = options.holdMs ?? 100;
    const run = async () => {
      // The keyboard's modules load only for a VM that is sent keys.
      const { qcodeToKeyCode, qnumToKeyCode } = await import("../ui/qcodes.ts");
      const codes = keys.map((k) => {
        const code = typeof k === "number" ? qnumToKeyCode(k) : qcodeToKeyCode(k);
        if (code === undefined) throw new TypeError(`No key ${JSON.stringify(k)} on this keyboard`);
        return code;
      });
      if (!Number.isFinite(holdMs) || holdMs < 0) throw new TypeError(`Invalid holdMs ${holdMs}`);
      if (this.#closed) throw new TypeError("The VM is closed");
      const kbd = await this.#keyboardInput();
      for (const c of codes) kbd.keyCode(c, true);
      await new Promise<void>((resolve) => {
        this.#keyHold = resolve;
        this.#keyHoldTimer ??= this.#loop.timer("monotonic", () => this.#keyHold?.());
        this.#keyHoldTimer.mod(this.#loop.now("monotonic") + holdMs * 1e6);
      });
      this.#keyHold = undefined;
      for (const c of codes.toReversed()) kbd.keyCode(c, false);
    };
    const done = this.#keys.then(run);
    this.#keys = done.catch(() => {});
    return done;
  }

  /**
   * What the display shows now (`--vnc` / `display` in the config), for a
   * script or test that looks at the screen; QMP `screendump` writes it to
   * a file.
   *
   * @returns the picture, or undefined when the machine has no display
   * @throws RangeError when the guest's mode does not fit video memory
   * @example
   * ```ts ignore
   * const shot = vm.screenshot();
   * if (shot) console.log(shot.width, shot.height, shot.rgb.length);
   * ```
   */
  screenshot(): Screenshot | undefined {
    return this.#framebuffer ? captureFramebuffer(this.#framebuffer) : undefined;
  }

  /** The disks: path, read-only flag and PCI slot. */
  get disks(): { path: string; readOnly: boolean; slot: number }[] {
    const fns = this.#built?.pciFunctions ?? [];
    return this.#rc.disks.map((d, i) => ({
      path: d.options.path,
      readOnly: d.file.readOnly,
      slot: fns[i]?.slot ?? -1,
    }));
  }

  /**
   * Calls `listener` on each event of a type.
   *
   * @param type which event
   * @param listener called with the event type
   * @returns a function that removes the listener
   */
  on(type: VmEventType, listener: (type: VmEventType) => void): () => void {
    const l = () => listener(type);
    this.#events.addEventListener(type, l);
    return () => this.#events.removeEventListener(type, l);
  }

  #emit(type: VmEventType): void {
    this.#events.dispatchEvent(new Event(type));
  }

  /**
   * Starts the vCPUs. Call once.
   *
   * @param options `paused`: the vCPUs start paused, as QEMU's `-S`
   *   ({@link resume} lets them run)
   * @returns resolves when the vCPUs were let go
   */
  start(options: { paused?: boolean } = {}): Promise<void> {
    if (this.#started) return Promise.reject(new Error("The VM was started already"));
    if (!this.#built) return Promise.reject(new Error("The VM is closed"));
    this.#started = true;
    this.#status = options.paused ? "paused" : "running";
    this.#run(options.paused ?? false).then(
      (exit) => this.#ended.resolve(exit),
      (e) => this.#ended.reject(e),
    );
    return Promise.resolve();
  }

  async #run(paused: boolean): Promise<VmExit> {
    for (let first = true;; first = false) {
      const built = this.#built!;
      const running = built.machine.run({ paused: first && paused });
      // The vCPUs have been let go: what follows no longer delays their
      // first KVM_RUN. The guest's RAM holds the kernel and initrd (a reboot
      // reads the files again); the loop's probe for Deno's fd holds this
      // thread ~5-15 ms.
      releaseBootFiles(this.#rc);
      this.#loop.watchDenoNow();
      const exit = await running;
      this.#serial.input = null;
      this.#built = undefined;
      await built.close();
      traceMark("machine taken apart (backends, iothreads, fds, KVM, guest RAM)");
      const crashed = exit.errors.length > 0;
      const reset = this.#resetRequested;
      this.#resetRequested = false;
      if (
        !crashed && exit.state === VmState.Reset &&
        (reset || this.#rc.onReboot === "restart") && !this.#closed
      ) {
        await this.#build();
        this.#status = "running";
        this.#emit("reset");
        continue;
      }
      this.#status = "shutdown";
      const reason = crashed ? "crash" : END_REASONS[exit.state] ?? "crash";
      const out: VmExit = {
        reason,
        exitCode: crashed ? EXIT_CODE_CRASH : exit.exitCode,
        errors: exit.errors,
      };
      this.#emit(reason);
      return out;
    }
  }

  /**
   * Resolves when the VM has ended and its machine is taken apart.
   *
   * @returns how it ended
   */
  wait(): Promise<VmExit> {
    return this.#ended.promise;
  }

  /** Pauses every vCPU; resolves once none runs guest code. */
  async pause(): Promise<void> {
    if (this.#status !== "running" || !this.#built) return;
    await this.#built.machine.pause();
    this.#status = "paused";
    this.#emit("pause");
  }

  /** Resumes after {@link pause}. */
  resume(): void {
    if (this.#status !== "paused" || !this.#built) return;
    this.#built.machine.resume();
    this.#status = "running";
    this.#emit("resume");
  }

  /**
   * Ends the VM from outside (as Ctrl-A x does): {@link wait} resolves with
   * reason `stopped`.
   *
   * @param exitCode the exit code to report (default 4)
   */
  stop(exitCode: number = EXIT_CODE_STOPPED): void {
    this.#built?.machine.stop(exitCode);
    if (!this.#started) this.#ended.resolve({ reason: "stopped", exitCode, errors: [] });
  }

  /**
   * Presses the ACPI power button (PM1 PWRBTN_STS and the SCI): a guest
   * that listens (acpid, systemd-logind) shuts down and powers off.
   *
   * @returns whether the guest had enabled the power button event
   */
  powerdown(): boolean {
    this.#emit("powerdown");
    const built = this.#built;
    if (!built) return false;
    // PM1 status is shared with the vCPU threads, which touch it under the big lock.
    built.machine.lock.lock();
    try {
      return built.acpiPm.pressPowerButton();
    } finally {
      built.machine.lock.unlock();
    }
  }

  /**
   * Resets the machine: the vCPUs stop, everything is taken apart and built
   * again from the same configuration, and the guest boots anew.
   */
  reset(): void {
    if (!this.#built || !this.#started) return;
    this.#resetRequested = true;
    if (!this.#built.machine.control.requestStop(VmState.Reset, EXIT_CODE_REBOOT)) {
      this.#resetRequested = false;
    }
  }

  /**
   * Stops the VM if it runs, waits for its end, and releases everything
   * (threads, fds, the disks' locks, the main loop).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#started) {
      this.stop();
      await this.#ended.promise.catch(() => {});
    } else {
      this.#ended.resolve({ reason: "stopped", exitCode: EXIT_CODE_STOPPED, errors: [] });
      await this.#display?.close(); // before the framebuffer it reads goes
      this.#display = undefined;
      await this.#built?.close();
      this.#built = undefined;
    }
    await this.#display?.close();
    this.#display = undefined;
    // The encoder has stopped and the VM (its KVM slot) is gone: unmap.
    this.#framebuffer?.close();
    this.#framebuffer = undefined;
    this.#serial.close();
    this.#trimTimer?.del();
    // Keys held by sendKeys are let go (their releases reach no machine).
    this.#keyHoldTimer?.del();
    this.#keyHold?.();
    this.#keyboard?.close();
    this.#loop.stop();
    await this.#looping;
    this.#loop.close();
    // A first boot's kernel unpacked for the cache: no half-written entry left.
    await kernelCacheFills();
    releaseBootFiles(this.#rc); // built, never started
    closeResolved(this.#rc);
    traceMark("VM closed (main loop stopped, files closed)");
  }

  /** `await using vm = await createVm(...)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Checks a configuration, opens its files and builds the machine; the
 * guest starts with {@link Vm.start}.
 *
 * @param config the VM
 * @param options `loop`: the main loop's options (the CLI sets its
 * `untrackedYieldNs`, as no other JavaScript shares its thread)
 * @returns the built VM
 * @throws {VmConfigError} one line naming a mistake in the configuration
 * (before any KVM object exists; a kernel too big for the RAM is found while
 * loading it, and what was built is taken apart first)
 * @example
 * ```ts
 * import { createVm } from "./vm.ts";
 * import { VmConfigError } from "./config.ts";
 * try {
 *   await createVm({ kernel: "/nonexistent/bzImage" });
 * } catch (e) {
 *   if (!(e instanceof VmConfigError)) throw e;
 *   console.log(e.message); // cannot read kernel '/nonexistent/bzImage': No such file or directory
 * }
 * ```
 */
export async function createVm(
  config: VmConfig,
  options: { loop?: MainLoopOptions } = {},
): Promise<Vm> {
  // The loop finds Deno's fd once the vCPUs run (#run): not on the way there.
  const loop = new MainLoop({ deferDenoProbe: true, ...options.loop });
  const vm = new Vm(resolveConfig(config), loop, CREATE);
  try {
    await vm[BUILD]();
  } catch (e) {
    // close() also releases what resolveConfig opened.
    await vm.close();
    // A kernel that does not fit this machine (its RAM too small) is the
    // configuration's mistake too: one line, not a crash.
    if (e instanceof KernelLoaderError) {
      const name = typeof config.kernel === "string" ? config.kernel : "kernel";
      throw new VmConfigError(`${name}: ${e.message}`);
    }
    throw e;
  }
  return vm;
}
