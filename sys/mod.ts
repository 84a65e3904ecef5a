/**
 * The system-call layer: libc through FFI, errno, fds, memory maps, threads.
 *
 * @module
 */
export * from "./errno.ts";
export * from "./fd.ts";
export * from "./thread.ts";
export { libc } from "./libc.ts";
export * from "./poll.ts";
