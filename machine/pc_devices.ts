/**
 * The PC platform devices as a device factory, so every vCPU Worker (and
 * the main thread, which feeds the UART from stdin) builds them over the
 * same shared state: COM1, i8042, CMOS RTC, POST port, port 0x92, reset
 * control, ACPI PM and isa-debug-exit.
 *
 * @module
 */
import type { BusMapping, DeviceContext } from "../devices/device_spec.ts";
import { createLegacyDevices, type LegacyState } from "../devices/legacy/mod.ts";
import { ConsoleOutput } from "../devices/console_output.ts";

/** Arguments of {@link pcDevices}. */
export interface PcDeviceArgs {
  /** From createLegacyState (sharing the machine's big lock). */
  legacy: LegacyState;
}

/** Console bytes one exit can batch before they are written out early. */
const CONSOLE_BATCH = 4096;

/**
 * Builds the PC devices for one thread. Console bytes go to ctx.consoleFd,
 * batched: one write per exit (a `rep outsb` of a whole line is one write).
 *
 * @param args the shared state
 * @param ctx this thread's context
 * @returns port mappings
 * @example
 * ```ts ignore
 * const spec = { module: PC_DEVICES_MODULE, factory: "pcDevices", args: { legacy } };
 * ```
 */
export function pcDevices(args: PcDeviceArgs, ctx: DeviceContext): BusMapping[] {
  const out = new ConsoleOutput(ctx.consoleFd, CONSOLE_BATCH);
  ctx.afterExit(() => out.flush());
  const devices = createLegacyDevices(args.legacy, {
    irq: (gsi) => ctx.irq(gsi),
    events: ctx.events,
    sink: (byte) => out.push(byte),
  });
  return devices.entries.map((e) => ({
    space: "pio" as const,
    base: e.base,
    size: e.size,
    device: e.device,
  }));
}
