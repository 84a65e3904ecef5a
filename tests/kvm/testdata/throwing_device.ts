/**
 * A device whose port write throws a host error (not a guest fault): what
 * a bug in device code looks like to the vCPU thread. Used by
 * tests/kvm/process_test.ts to check that the error reaches the user.
 *
 * @module
 */
import type { BusMapping } from "../../../devices/device_spec.ts";

/** The port the guest writes to. */
export const THROWING_PORT = 0x510;
/** The message of the error the device throws. */
export const THROWING_MESSAGE = "test device failed on purpose";

/**
 * @returns one PIO mapping at {@link THROWING_PORT}
 */
export function throwingDevice(): BusMapping[] {
  return [{
    space: "pio",
    base: THROWING_PORT,
    size: 1,
    device: {
      read(_offset, data) {
        data.fill(0xff);
      },
      write() {
        throw new Error(THROWING_MESSAGE);
      },
    },
  }];
}
