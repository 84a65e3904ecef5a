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
  encodeCmdline,
  KernelLoaderError,
  loadBzImage,
  loadElf,
  setupLongMode,
  setupPvh,
  usableEnd,
  writeCmdline,
  writePvhStartInfo,
} from "../boot/mod.ts";
import { buildAcpiTables } from "../acpi/mod.ts";

/** The kernel command line when --append is not given. */
export const DEFAULT_CMDLINE = "console=ttyS0";

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
}

/** What the loader decided. */
export interface LinuxBootResult {
  /** "bzImage" or "vmlinux (PVH)". */
  format: string;
  /** vCPU 0's entry state. */
  cpu: CpuBootState;
  /** RSDP address. */
  rsdp: number;
}

const ELF_MAGIC = 0x464c457f;
const FOUR_GIB = 0x1_0000_0000;

/**
 * Loads the kernel (and initrd), writes ACPI tables and returns the boot CPU state.
 *
 * @param mem guest RAM
 * @param o kernel, initrd, command line, vCPUs
 * @returns the entry state for vCPU 0
 * @throws {KernelLoaderError} when the file is not a kernel we can boot
 */
export function loadLinux(mem: GuestMemory, o: LinuxBootOptions): LinuxBootResult {
  const acpi = buildAcpiTables(mem, { cpus: o.cpus, pci: o.pci ?? false });
  const e820 = buildE820(mem);
  const isElf = o.kernel.length >= 4 &&
    new DataView(o.kernel.buffer, o.kernel.byteOffset, 4).getUint32(0, true) === ELF_MAGIC;
  if (!isElf) {
    const boot = loadBzImage(mem, o.kernel, {
      cmdline: o.cmdline,
      initrd: o.initrd,
      e820,
      rsdp: acpi.rsdp,
    });
    const cpu = setupLongMode(mem, { entry: boot.entry, bootParams: boot.bootParams });
    return { format: "bzImage", cpu, rsdp: acpi.rsdp };
  }
  const elf = loadElf(mem, o.kernel);
  if (elf.pvhEntry === undefined) {
    throw new KernelLoaderError(
      "This vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); boot its bzImage instead",
    );
  }
  const cmd = writeCmdline(mem, encodeCmdline(o.cmdline, 2048));
  let initrd: { addr: number; size: number } | undefined;
  if (o.initrd) {
    const top = Math.min(usableEnd(e820, elf.kernelEnd), FOUR_GIB);
    const addr = Math.floor((top - o.initrd.length) / 4096) * 4096;
    if (addr < elf.kernelEnd) {
      throw new KernelLoaderError(
        `The initrd (${o.initrd.length} bytes) does not fit in guest RAM above the kernel; give more --memory`,
      );
    }
    mem.write(addr, o.initrd);
    initrd = { addr, size: o.initrd.length };
  }
  const startInfo = writePvhStartInfo(mem, {
    e820,
    cmdlineAddr: cmd.addr,
    rsdp: acpi.rsdp,
    initrd,
  });
  const cpu = setupPvh(mem, { entry: elf.pvhEntry, startInfo });
  return { format: "vmlinux (PVH)", cpu, rsdp: acpi.rsdp };
}
