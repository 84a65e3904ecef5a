/**
 * A user-written PIO device for the API test: a byte-wide accumulator. Every
 * vCPU thread builds it over the same shared word, as the public API's
 * `devices` promise.
 *
 * @module
 */
import type { BusMapping, DeviceContext } from "../../mod.ts";

/** Arguments of {@link accumulatorPort}. */
export interface AccumulatorArgs {
  /** One Int32 word: the running sum. */
  sum: SharedArrayBuffer;
  /** Its port. */
  port: number;
}

/**
 * A port that adds each byte written to a shared sum and reads it back.
 *
 * @param args the shared word and the port
 * @param _ctx unused
 * @returns one PIO mapping
 */
export function accumulatorPort(args: AccumulatorArgs, _ctx: DeviceContext): BusMapping[] {
  const sum = new Int32Array(args.sum);
  return [{
    space: "pio",
    base: args.port,
    size: 1,
    device: {
      read(_offset, data) {
        data[0] = Atomics.load(sum, 0) & 0xff;
      },
      write(_offset, data) {
        Atomics.add(sum, 0, data[0]);
      },
    },
  }];
}
