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

/** What a factory gets besides its arguments. */
export interface DeviceContext {
  /** Guest RAM. */
  readonly memory: GuestMemory;
  /** An interrupt line by GSI. */
  irq(gsi: number): IrqLine;
  /** VM-level events. */
  readonly events: SystemEvents;
  /** The fd guest console output is written to. */
  readonly consoleFd: number;
}

/** One device range on a bus. */
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

/** A device factory: builds bus mappings from its arguments, in any thread. */
export type DeviceFactory = (args: never, ctx: DeviceContext) => BusMapping[];

/** A device as the machine describes it to its vCPU Workers. */
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
    const mod = await import(s.module);
    const f = mod[s.factory] as ((args: unknown, ctx: DeviceContext) => BusMapping[]) | undefined;
    if (typeof f !== "function") {
      throw new TypeError(`Device module ${s.module} has no factory ${s.factory}`);
    }
    out.push(...f(s.args, ctx));
  }
  return out;
}
