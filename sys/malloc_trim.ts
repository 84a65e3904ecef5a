/**
 * Gives the free memory of glibc's malloc arenas back to the kernel.
 *
 * Start-up frees a lot of what it allocated (V8 compiling the module graph
 * on each thread, Deno's module loading, the devices' set-up), and glibc
 * keeps freed memory in its arenas, one per thread that allocated: it
 * returns only the top of the main heap on its own. `malloc_trim(0)`
 * walks every arena and releases each free page with MADV_DONTNEED, so
 * the VMM calls it once a machine is built (measured: 4-6 MiB less RSS
 * with one vCPU; bench/memory_bench.ts). It is safe at any time: it takes
 * each arena's lock like malloc itself.
 *
 * @module
 */
import { libc } from "./libc.ts";

/**
 * malloc_trim(0): returns free arena memory to the kernel.
 *
 * @returns whether any memory was released
 * @example
 * ```ts
 * import { trimMalloc } from "./malloc_trim.ts";
 * trimMalloc();
 * ```
 */
export function trimMalloc(): boolean {
  return libc.malloc_trim(0n) === 1;
}
