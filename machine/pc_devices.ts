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
  const fd = ctx.consoleFd;
  const batch = new Uint8Array(CONSOLE_BATCH);
  let pending = 0;
  const flush = () => {
    let off = 0;
    while (off < pending) {
      const n = Number(
        libc.write(fd, off === 0 ? batch : batch.subarray(off), BigInt(pending - off)),
      );
      if (n <= 0) break; // the console is gone: drop the output, never the VM
      off += n;
    }
    pending = 0;
  };
  ctx.afterExit(flush);
  const devices = createLegacyDevices(args.legacy, {
    irq: (gsi) => ctx.irq(gsi),
    events: ctx.events,
    sink(byte) {
      batch[pending++] = byte;
      if (pending === CONSOLE_BATCH) flush();
    },
  });
  return devices.entries.map((e) => ({
    space: "pio" as const,
    base: e.base,
    size: e.size,
    device: e.device,
  }));
}
