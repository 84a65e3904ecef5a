/**
 * Linux boot: bzImage and vmlinux loaders, the zero page, the e820 map, the
 * boot-time memory layout and the CPU state at the 64-bit and PVH entries.
 * Loaders write into a GuestMemory and return plain data; they never
 * touch vCPUs.
 *
 * A 64-bit boot of a bzImage:
 *
 * ```ts ignore
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { buildE820, loadBzImage, setupLongMode } from "./mod.ts";
 * const mem = GuestMemory.allocate(512 << 20);
 * const boot = loadBzImage(mem, Deno.readFileSync("vmlinuz"), {
 *   cmdline: "console=ttyS0",
 *   e820: buildE820(mem),
 * });
 * const cpu = setupLongMode(mem, { entry: boot.entry, bootParams: boot.bootParams });
 * // cpu.regs / cpu.sregs go to the vCPU backend.
 * ```
 *
 * @module
 */
export * from "./boot_params.ts";
export * from "./bzimage.ts";
export * from "./cmdline.ts";
export * from "./e820.ts";
export * from "./elf.ts";
export * from "./initrd.ts";
export * from "./kernel_loader_error.ts";
export * from "./layout.ts";
export * from "./pvh.ts";
export * from "./pvh_loader.ts";
export * from "./x86_64.ts";
