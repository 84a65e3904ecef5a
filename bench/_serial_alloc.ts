/**
 * Heap bytes and time per serial exit, for bench/serial_exit_bench.ts: a
 * guest's THR write through the UART model, then the console flush a vCPU
 * thread makes at the end of each exit, into /dev/null. Run with a 64 MiB
 * young generation (`--v8-flags=--min-semi-space-size=64,--max-semi-space-size=64`)
 * so that no scavenge runs between the two `heapUsed` readings.
 *
 * ```sh
 * deno run -A --v8-flags=... bench/_serial_alloc.ts flush|writeAll
 * ```
 *
 * `flush` is the VMM's path (devices/console_output.ts); `writeAll` sends the
 * same bytes as the flush did before, `writeAll(fd, buf.subarray(0, n))`.
 * Prints one JSON line: bytes and ns per exit, and whether the heap shrank (a
 * GC ran between the readings: the reading is not clean).
 *
 * @module
 */
import { ConsoleOutput } from "../devices/console_output.ts";
import { Serial, SERIAL_STATE_BYTES } from "../devices/legacy/serial.ts";
import { FakeIrqLine } from "../devices/irq.ts";
import { closeFd, openFile, writeAll } from "../sys/fd.ts";

const variant = Deno.args[0] ?? "flush";
if (variant !== "flush" && variant !== "writeAll") {
  throw new RangeError(`Invalid variant ${variant}`);
}
const O_WRONLY = 1;
const fd = openFile("/dev/null", O_WRONLY);
const out = new ConsoleOutput(fd);
const buf = new Uint8Array(4096);
let len = 0;
const region = {
  sab: new SharedArrayBuffer(SERIAL_STATE_BYTES),
  offset: 0,
  length: SERIAL_STATE_BYTES,
};
Serial.initState(region);
const uart = new Serial(region, {
  irq: new FakeIrqLine(),
  sink: variant === "flush" ? (b) => out.push(b) : (b) => void (buf[len++] = b),
});
const thr = new Uint8Array([0x41]);
const N = 20_000;

function exits(n: number): void {
  if (variant === "flush") {
    for (let i = 0; i < n; i++) {
      uart.write(0, thr);
      out.flush();
    }
  } else {
    for (let i = 0; i < n; i++) {
      uart.write(0, thr);
      writeAll(fd, buf.subarray(0, len));
      len = 0;
    }
  }
}

exits(N); // warm-up: the JIT settles
const h0 = Deno.memoryUsage().heapUsed;
const t0 = performance.now();
exits(N);
const t1 = performance.now();
const h1 = Deno.memoryUsage().heapUsed;
closeFd(fd);
console.log(JSON.stringify({
  bytesPerExit: (h1 - h0) / N,
  nsPerExit: ((t1 - t0) * 1e6) / N,
  shrank: h1 < h0,
}));
