// The VMM's start-up with its signal policy installed, its main thread then
// blocked in a synchronous call (as an open(2) of a FIFO would block it):
// for tests/signals_test.ts, which checks that SIGTERM still ends it.
import { installSignalPolicy } from "../../sys/signals.ts";

installSignalPolicy();
console.log("blocked");
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
