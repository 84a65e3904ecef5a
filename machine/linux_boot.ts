/**
 * Puts a Linux kernel into guest RAM and chooses the entry: a bzImage
 * through the 64-bit boot protocol, or a vmlinux ELF through its PVH entry.
 * ACPI tables and the e820 map are written here too; nothing touches a vCPU
 * (the caller applies the returned CPU state to vCPU 0).
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  buildE820,
  type CpuBootState,
  loadBzImage,
  loadPvhKernel,
  setupLongMode,
  setupPvh,
} from "../boot/mod.ts";
import { buildAcpiTables } from "../acpi/tables.ts";
import type { PciIrqRoute } from "../acpi/dsdt.ts";
import { type LinearFramebufferInfo, writeScreenInfo } from "../boot/screen_info.ts";
import type { KernelPlacement, UnpackedKernelBytes } from "../boot/unpacked_kernel.ts";

/** What to boot. */
export interface LinuxBootOptions {
  /** The kernel file's bytes (bzImage or vmlinux). */
  kernel: Uint8Array;
  /** The initrd's bytes. */
  initrd?: Uint8Array;
  /** Command line. */
  cmdline: string;
  /** vCPUs (for the MADT). */
  cpus: number;
  /** Describe the PCI root bridge in the DSDT. */
  pci?: boolean;
  /** The root bridge's final _PRT (the builder has placed every function). */
  pciIrqRoutes?: readonly PciIrqRoute[];
  /** A linear framebuffer to announce in screen_info (bzImage boots only). */
  framebuffer?: LinearFramebufferInfo;
  /** The bzImage's kernel already unpacked (vm/unpacked_kernel_source.ts). */
  unpacked?: UnpackedKernelBytes;
}

/** What the loader decided. */
export interface LinuxBootResult {
  /** "bzImage" or "vmlinux (PVH)". */
  format: string;
  /** vCPU 0's entry state. */
  cpu: CpuBootState;
  /** RSDP address. */
  rsdp: number;
  /** Where an unpacked kernel runs (bzImage boots given one). */
  unpacked?: KernelPlacement & { readonly kaslr: boolean };
}

const ELF_MAGIC = 0x464c457f;

/**
 * Loads the kernel (and initrd), writes ACPI tables and returns the boot CPU state.
 *
 * @param mem guest RAM
 * @param o kernel, initrd, command line, vCPUs
 * @returns the entry state for vCPU 0
 * @throws {KernelLoaderError} when the file is not a kernel we can boot (a vmlinux
 *   without a PVH note among them)
 * @example
 * ```ts ignore
 * const boot = loadLinux(m.memory, { kernel, cmdline: "console=ttyS0", cpus: 1 });
 * ```
 */
export function loadLinux(mem: GuestMemory, o: LinuxBootOptions): LinuxBootResult {
  const acpi = buildAcpiTables(mem, {
    cpus: o.cpus,
    pci: o.pci ?? false,
    pciIrqRoutes: o.pciIrqRoutes,
  });
  const e820 = buildE820(mem);
  const isElf = o.kernel.length >= 4 &&
    new DataView(o.kernel.buffer, o.kernel.byteOffset, 4).getUint32(0, true) === ELF_MAGIC;
  if (!isElf) {
    const boot = loadBzImage(mem, o.kernel, {
      cmdline: o.cmdline,
      initrd: o.initrd,
      e820,
      rsdp: acpi.rsdp,
      unpacked: o.unpacked,
    });
    if (o.framebuffer) {
      const zeroPage = mem.slice(boot.bootParams, 0x1000);
      writeScreenInfo(new DataView(zeroPage.buffer, zeroPage.byteOffset, 0x1000), 0, o.framebuffer);
    }
    const cpu = setupLongMode(mem, {
      entry: boot.entry,
      bootParams: boot.bootParams,
      rbx: boot.relocationParams,
    });
    if (boot.unpacked) {
      return {
        format: "bzImage (unpacked by the VMM)",
        cpu,
        rsdp: acpi.rsdp,
        unpacked: boot.unpacked,
      };
    }
    return { format: "bzImage", cpu, rsdp: acpi.rsdp };
  }
  const pvh = loadPvhKernel(mem, o.kernel, {
    cmdline: o.cmdline,
    initrd: o.initrd,
    e820,
    rsdp: acpi.rsdp,
  });
  const cpu = setupPvh(mem, { entry: pvh.entry, startInfo: pvh.startInfo });
  return { format: "vmlinux (PVH)", cpu, rsdp: acpi.rsdp };
}
