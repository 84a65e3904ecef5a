/**
 * Machine-level requests a guest makes through legacy ports.
 *
 * @module
 */

/**
 * Where reset, power-off and debug-exit requests go. Called in the vCPU
 * thread that took the exit, under the big lock; an implementation only
 * records the request (it must not block): the VM's control block
 * (vcpu/vm_control.ts) wakes the main thread, which stops every vCPU. A
 * guest may repeat a request (Linux writes 0xfe to port 0x64 up to ten
 * times); the first one wins.
 *
 * @example
 * ```ts
 * import type { SystemEvents } from "./system_events.ts";
 * // A device for a guest-visible "power off" register.
 * export function powerRegister(events: SystemEvents) {
 *   return { write: (_o: number, data: Uint8Array) => data[0] === 1 && events.shutdown() };
 * }
 * ```
 */
export interface SystemEvents {
  /** The guest asked for a system reset (reboot). */
  reset(): void;
  /** The guest asked to power off (ACPI S5). */
  shutdown(): void;
  /**
   * The guest asked to end the VM with a process exit status (QEMU's
   * isa-debug-exit: `(value << 1) | 1`, truncated to 8 bits).
   */
  exit(code: number): void;
}

/**
 * A SystemEvents that records requests, for tests.
 *
 * @example
 * ```ts
 * import { RecordingSystemEvents } from "./system_events.ts";
 * const ev = new RecordingSystemEvents();
 * ev.reset();
 * console.log(ev.events); // ["reset"]
 * ```
 */
export class RecordingSystemEvents implements SystemEvents {
  /** Requests in arrival order: "reset", "shutdown" or "exit:<code>". */
  readonly events: string[] = [];
  /** Records a reset. */
  reset(): void {
    this.events.push("reset");
  }
  /** Records a power-off. */
  shutdown(): void {
    this.events.push("shutdown");
  }
  /**
   * Records an exit request.
   *
   * @param code the exit status asked for
   */
  exit(code: number): void {
    this.events.push(`exit:${code}`);
  }
}
