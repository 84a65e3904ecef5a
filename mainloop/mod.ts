/**
 * QEMU's main loop and I/O threads on Deno: fd handlers, timers, bottom
 * halves, and a way to wake a loop from any thread.
 *
 * @module
 */
export * from "./types.ts";
export * from "./clock.ts";
export * from "./notifier.ts";
export * from "./bh.ts";
export * from "./timer.ts";
export * from "./main_loop.ts";
export * from "./iothread.ts";
