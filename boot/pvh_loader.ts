/**
 * The PVH boot path for a vmlinux with a XEN_ELFNOTE_PHYS32_ENTRY note:
 * load the ELF, place initrd and command line, write hvm_start_info. Pair it
 * with setupPvh (x86_64.ts) for the register state.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import { encodeCmdline, writeCmdline } from "./cmdline.ts";
import { buildE820, type E820Entry } from "./e820.ts";
import { findPvhEntry, loadElf } from "./elf.ts";
import { placeInitrd } from "./initrd.ts";
import { KernelLoaderError } from "./kernel_loader_error.ts";
import { writePvhStartInfo } from "./pvh.ts";

/** Options for {@link loadPvhKernel}. */
export interface PvhLoadOptions {
  /** The kernel command line. */
  readonly cmdline: string;
  /** The initial ramdisk, if any (passed as module 0). */
  readonly initrd?: Uint8Array;
  /** The memory map; {@link buildE820} of the memory if left out. */
  readonly e820?: readonly E820Entry[];
  /** The RSDP address. */
  readonly rsdp?: number;
  /** Longest command line accepted, excluding the NUL (default 2047, x86 COMMAND_LINE_SIZE - 1). */
  readonly cmdlineMax?: number;
}

/** Where {@link loadPvhKernel} put things. */
export interface PvhBootResult {
  /** The PVH entry point (32-bit protected mode). */
  readonly entry: number;
  /** The hvm_start_info address: EBX at entry. */
  readonly startInfo: number;
  /** Lowest loaded kernel address. */
  readonly kernelAddr: number;
  /** End of the kernel image in memory. */
  readonly kernelEnd: number;
  /** The command line's address. */
  readonly cmdlineAddr: number;
  /** The initrd's placement, if one was given. */
  readonly initrd?: { readonly addr: number; readonly size: number };
}

/**
 * Loads a vmlinux for the PVH entry.
 *
 * @param mem guest RAM
 * @param vmlinux the ELF kernel
 * @param options command line, initrd, e820, RSDP
 * @returns entry point and start info address, for setupPvh
 * @throws {KernelLoaderError} if the kernel has no PVH note, or does not load
 * @example
 * ```ts ignore
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { loadPvhKernel, setupPvh } from "./mod.ts";
 * const mem = GuestMemory.allocate(256 << 20);
 * const k = loadPvhKernel(mem, Deno.readFileSync("vmlinux"), { cmdline: "console=ttyS0" });
 * const cpu = setupPvh(mem, { entry: k.entry, startInfo: k.startInfo });
 * ```
 */
export function loadPvhKernel(
  mem: GuestMemory,
  vmlinux: Uint8Array,
  options: PvhLoadOptions,
): PvhBootResult {
  const entry = findPvhEntry(vmlinux);
  if (entry === undefined) {
    throw new KernelLoaderError("Kernel has no PVH entry (no XEN_ELFNOTE_PHYS32_ENTRY note)");
  }
  const cmdline = encodeCmdline(options.cmdline, options.cmdlineMax ?? 2047);
  const map = options.e820 ?? buildE820(mem);
  const k = loadElf(mem, vmlinux);
  let initrd: { addr: number; size: number } | undefined;
  if (options.initrd && options.initrd.length > 0) {
    const size = options.initrd.length;
    const addr = placeInitrd(map, size, { minAddr: k.kernelEnd, maxEnd: 0x1_0000_0000 });
    mem.write(addr, options.initrd);
    initrd = { addr, size };
  }
  const cmd = writeCmdline(mem, cmdline);
  const startInfo = writePvhStartInfo(mem, {
    e820: map,
    cmdlineAddr: cmd.addr,
    rsdp: options.rsdp,
    initrd,
  });
  return {
    entry,
    startInfo,
    kernelAddr: k.kernelAddr,
    kernelEnd: k.kernelEnd,
    cmdlineAddr: cmd.addr,
    initrd,
  };
}
