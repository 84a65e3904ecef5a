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
import { libc } from "../sys/libc.ts";

/** Arguments of {@link pcDevices}. */
export interface PcDeviceArgs {
  /** From createLegacyState (sharing the machine's big lock). */
  legacy: LegacyState;
}

/**
 * Builds the PC devices for one thread; console bytes go to ctx.consoleFd.
 *
 * @param args the shared state
 * @param ctx this thread's context
 * @returns port mappings
 */
export function pcDevices(args: PcDeviceArgs, ctx: DeviceContext): BusMapping[] {
  const fd = ctx.consoleFd;
  const one = new Uint8Array(1);
  const devices = createLegacyDevices(args.legacy, {
    irq: (gsi) => ctx.irq(gsi),
    events: ctx.events,
    sink(byte) {
      one[0] = byte;
      libc.write(fd, one, 1n);
    },
  });
  return devices.entries.map((e) => ({
    space: "pio" as const,
    base: e.base,
    size: e.size,
    device: e.device,
  }));
}
