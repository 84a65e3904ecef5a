/**
 * Devices the KVM tests put next to the real ones: the echo MMIO register
 * the test guests use, and a write-only port sink for console-less runs.
 *
 * @module
 */
import type { BusMapping, DeviceContext } from "../../devices/device_spec.ts";
import { libc } from "../../sys/libc.ts";

/** Guest-physical address of the echo register. */
export const ECHO_MMIO_BASE = 0xd000_0000;

/** Arguments of {@link testDevices}. */
export interface TestDeviceArgs {
  /** Shared word storing the echo value (so all vCPUs see one register). */
  echo: SharedArrayBuffer;
  /** Map a raw byte sink at this port (when no UART is used). */
  rawConsolePort?: number;
  /** Map QEMU's isa-debug-exit at port 0xf4 (when the PC ports are not used). */
  debugExit?: boolean;
}

/**
 * The echo register: a 32-bit write at +0 stores V; a 32-bit read at +4
 * returns V ^ 0xffffffff; a read at +0 returns V.
 *
 * @param args shared state
 * @param ctx device context
 * @returns the mappings
 */
export function testDevices(args: TestDeviceArgs, ctx: DeviceContext): BusMapping[] {
  const word = new Uint32Array(args.echo);
  const view = new DataView(new ArrayBuffer(8));
  const out: BusMapping[] = [{
    space: "mmio",
    base: ECHO_MMIO_BASE,
    size: 8,
    device: {
      read(offset, data) {
        view.setUint32(0, offset === 4 ? ~word[0] >>> 0 : word[0], true);
        for (let i = 0; i < data.length; i++) data[i] = i < 4 ? view.getUint8(i) : 0;
      },
      write(offset, data) {
        if (offset !== 0) return;
        let v = 0;
        for (let i = Math.min(4, data.length) - 1; i >= 0; i--) v = (v << 8) | data[i];
        word[0] = v >>> 0;
      },
    },
  }];
  if (args.rawConsolePort !== undefined) {
    const fd = ctx.consoleFd;
    out.push({
      space: "pio",
      base: args.rawConsolePort,
      size: 1,
      device: {
        read(_o, data) {
          data.fill(0);
        },
        write(_o, data) {
          libc.write(fd, data, BigInt(data.length));
        },
      },
    });
  }
  if (args.debugExit) {
    out.push({
      space: "pio",
      base: 0xf4,
      size: 1,
      device: {
        read(_o, data) {
          data.fill(0xff);
        },
        write(_o, data) {
          ctx.events.exit(((data[0] << 1) | 1) & 0xff);
        },
      },
    });
  }
  return out;
}
