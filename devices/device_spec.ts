/**
 * How a machine describes its devices so that every vCPU Worker can build
 * the same device objects over the same shared state: a module URL, the name
 * of a factory it exports, and postMessage-able arguments (SharedArrayBuffers
 * for registers, fds, numbers).
 *
 * @module
 */
import type { BusDevice } from "./bus.ts";
import type { IrqLine } from "./irq.ts";
import type { GuestMemory } from "../memory/guest_memory.ts";
import type { SystemEvents } from "./legacy/system_events.ts";
import { importServed } from "../sys/bundle_registry.ts";

/**
 * What a factory gets besides its arguments.
 *
 * @example
 * ```ts
 * import type { BusMapping, DeviceContext } from "./device_spec.ts";
 * // A doorbell: a write raises GSI 10 until the guest reads the register.
 * export function doorbell(args: { port: number }, ctx: DeviceContext): BusMapping[] {
 *   const line = ctx.irq(10);
 *   const device = {
 *     read(_o: number, data: Uint8Array) { data.fill(0); line.set(false); },
 *     write() { line.set(true); },
 *   };
 *   return [{ space: "pio", base: args.port, size: 1, device }];
 * }
 * ```
 */
export interface DeviceContext {
  /** Guest RAM. */
  readonly memory: GuestMemory;
  /** An interrupt line by GSI. */
  irq(gsi: number): IrqLine;
  /** VM-level events. */
  readonly events: SystemEvents;
  /** The fd guest console output is written to. */
  readonly consoleFd: number;
  /**
   * Registers work to run at the end of each exit the devices handled, in
   * this thread and still under the big lock (so output keeps the guest's
   * order): flush what a device batched during the exit, such as console
   * bytes, with one system call.
   */
  afterExit(flush: () => void): void;
}

/**
 * One device range on a bus.
 *
 * @example
 * ```ts
 * import type { BusMapping } from "./device_spec.ts";
 * const zero: BusMapping = {
 *   space: "mmio",
 *   base: 0xd000_0000,
 *   size: 0x1000,
 *   device: { read: (_o, data) => data.fill(0), write() {} },
 * };
 * console.log(zero.base.toString(16));
 * ```
 */
export interface BusMapping {
  /** Port I/O or memory-mapped. */
  readonly space: "pio" | "mmio";
  /** First address. */
  readonly base: number;
  /** Length. */
  readonly size: number;
  /** The device. */
  readonly device: BusDevice;
}

/**
 * A device factory: builds bus mappings from its arguments, in any thread.
 * Every vCPU thread runs it, so state the guest can see must live in what
 * `args` shares (SharedArrayBuffers); the big lock is held around each
 * access.
 *
 * @example
 * ```ts
 * import type { BusMapping, DeviceContext, DeviceFactory } from "./device_spec.ts";
 * // A counter port every vCPU sees the same way.
 * export function counter(args: { sab: SharedArrayBuffer }, _ctx: DeviceContext): BusMapping[] {
 *   const n = new Int32Array(args.sab);
 *   const device = {
 *     read: (_o: number, data: Uint8Array) => { data[0] = n[0]; },
 *     write: () => { n[0]++; },
 *   };
 *   return [{ space: "pio", base: 0x510, size: 1, device }];
 * }
 * const factory: DeviceFactory = counter;
 * ```
 */
export type DeviceFactory = (args: never, ctx: DeviceContext) => BusMapping[];

/**
 * A device as the machine describes it to its vCPU Workers (and as
 * `VmConfig.devices` takes your own).
 *
 * @example
 * ```ts
 * import type { DeviceSpec } from "./device_spec.ts";
 * const spec: DeviceSpec = {
 *   module: new URL("./my_counter.ts", import.meta.url).href,
 *   factory: "counter",
 *   args: { sab: new SharedArrayBuffer(4) },
 * };
 * console.log(spec.factory);
 * ```
 */
export interface DeviceSpec {
  /** Module URL (import.meta.resolve / new URL(..., import.meta.url).href). */
  readonly module: string;
  /** Name of the exported {@link DeviceFactory}. */
  readonly factory: string;
  /** Its arguments (structured-cloneable). */
  readonly args: unknown;
}

/**
 * Imports and runs every factory in specs.
 *
 * @param specs the machine's devices
 * @param ctx context for this thread
 * @returns all mappings
 */
export async function buildDevices(
  specs: readonly DeviceSpec[],
  ctx: DeviceContext,
): Promise<BusMapping[]> {
  const out: BusMapping[] = [];
  for (const s of specs) {
    const mod = await importServed(s.module);
    const f = mod[s.factory] as ((args: unknown, ctx: DeviceContext) => BusMapping[]) | undefined;
    if (typeof f !== "function") {
      throw new TypeError(`Device module ${s.module} has no factory ${s.factory}`);
    }
    out.push(...f(s.args, ctx));
  }
  return out;
}
