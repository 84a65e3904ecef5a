/**
 * A {@link VmConfig} checked and made concrete before any KVM object
 * exists: sizes parsed, files read, the kernel recognised, disks opened and
 * locked, device counts checked against the layout. Every user mistake is a
 * {@link VmConfigError} with one line; nothing stays open after one.
 *
 * @module
 */
import {
  DEFAULT_CMDLINE,
  DEFAULT_MEMORY_BYTES,
  type FlatImage,
  MAX_CPUS,
  MIN_MEMORY_BYTES,
  type PlacementConfig,
  type SerialConfig,
  type VirtioFunctionConfig,
  type VmConfig,
  VmConfigError,
} from "./config.ts";
import { checkPciFunctionCount } from "./layout.ts";
import type { DeviceSpec } from "../devices/device_spec.ts";
import { DiskError, openDisks, type OpenedDisk } from "../machine/disk_open.ts";
import { parseSize } from "../machine/size.ts";
import { errno, ErrnoError } from "../sys/errno.ts";
import {
  closeFd,
  cstring,
  FileTypeError,
  O_CLOEXEC,
  O_CREAT,
  O_TRUNC,
  O_WRONLY,
} from "../sys/fd.ts";
import { BootFile } from "./boot_file.ts";
import { libc } from "../sys/libc.ts";
import { KernelLoaderError } from "../boot/kernel_loader_error.ts";
import { parseBzImage } from "../boot/bzimage.ts";
import { findPvhEntry } from "../boot/elf.ts";
import {
  closeNetDevices,
  netFunctionCount,
  type ResolvedNetDevices,
  resolveNetDevices,
} from "./net_devices.ts";
import { FRAMEBUFFER_BYTES } from "../devices/display/linear_framebuffer.ts";
import { type ResolvedDisplay, resolveDisplay } from "../ui/vnc/display_config.ts";

/** A configuration ready to build from (and to rebuild from on reset). */
export interface ResolvedConfig {
  /** vCPUs. */
  readonly cpus: number;
  /** Guest RAM in bytes. */
  readonly memoryBytes: number;
  /** Kernel bytes. */
  readonly kernel?: Uint8Array;
  /** Initrd bytes. */
  readonly initrd?: Uint8Array;
  /** The kernel and initrd that were read from files ({@link releaseBootFiles}). */
  readonly bootFiles: readonly BootFile[];
  /** The kernel's file, when it was named by path (its unpacked copy is cached by it). */
  readonly kernelFile?: BootFile;
  /** Unpack a bzImage's kernel on the host and cache it (vm/unpacked_kernel_source.ts). */
  readonly unpackKernel: boolean;
  /** Command line. */
  readonly cmdline: string;
  /** Flat image instead of a kernel. */
  readonly flat?: FlatImage;
  /** In-kernel irqchip and PIT. */
  readonly irqchip: boolean;
  /** Open disks (closed by {@link closeResolved}). */
  readonly disks: readonly OpenedDisk[];
  /** Other virtio functions. */
  readonly virtio: readonly VirtioFunctionConfig[];
  /** User devices. */
  readonly devices: readonly DeviceSpec[];
  /** Serial wiring. */
  readonly serial: SerialConfig;
  /** With `serial: { file }`: the file, open (closed by {@link closeResolved}). */
  readonly serialFd?: number;
  /** Reboot policy. */
  readonly onReboot: "exit" | "restart";
  /** Log unclaimed accesses. */
  readonly logUnclaimed: boolean;
  /** KVM device path. */
  readonly kvmPath?: string;
  /** Inline disk I/O. */
  readonly syncDiskIo: boolean;
  /** Thread placement. */
  readonly placement: PlacementConfig;
  /** NICs (open taps), virtio-rng and virtio-console (closed by {@link closeResolved}). */
  readonly net: ResolvedNetDevices;
  /** A linear framebuffer of this size, announced to the kernel; served over VNC if asked (ui/vnc). */
  readonly display?: ResolvedDisplay;
  /** A virtio tablet for VNC pointer events (ui/vnc). */
  readonly tablet: boolean;
}

/** A kernel or initrd: bytes given by the caller, or a file read into memory of its own. */
function readInput(
  what: string,
  source: string | Uint8Array,
  files: BootFile[],
): Uint8Array | BootFile {
  if (typeof source !== "string") return source;
  if (source === "") throw new VmConfigError(`--${what} needs a file name`);
  try {
    const f = new BootFile(source, 2 ** 31);
    files.push(f);
    return f;
  } catch (e) {
    if (e instanceof ErrnoError) {
      const why = e.code === "EISDIR" ? "it is a directory" : e.description;
      throw new VmConfigError(`cannot read ${what} '${source}': ${why}`);
    }
    if (e instanceof FileTypeError) {
      throw new VmConfigError(`cannot read ${what} '${source}': it is ${e.fileType}`);
    }
    if (e instanceof RangeError) throw new VmConfigError(`${what} '${source}' is too large`);
    throw e;
  }
}

function checkKernel(kernel: Uint8Array, name: string): void {
  try {
    const isElf = kernel[0] === 0x7f && kernel[1] === 0x45 && kernel[2] === 0x4c &&
      kernel[3] === 0x46;
    if (!isElf) parseBzImage(kernel);
    else if (findPvhEntry(kernel) === undefined) {
      throw new KernelLoaderError(
        "vmlinux without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); boot its bzImage instead",
      );
    }
  } catch (e) {
    if (e instanceof KernelLoaderError) throw new VmConfigError(`${name}: ${e.message}`);
    throw e;
  }
}

function memoryOf(m: number | string | undefined): number {
  const text = m === undefined ? undefined : String(m);
  const bytes = m === undefined ? DEFAULT_MEMORY_BYTES : typeof m === "number" ? m : parseSize(m);
  if (bytes === undefined || !Number.isSafeInteger(bytes)) {
    throw new VmConfigError(
      `Invalid memory size '${text}': use a size like 256M or 1G (a bare number is MiB)`,
    );
  }
  if (bytes % 4096 !== 0) {
    throw new VmConfigError(`Invalid memory size '${text}': must be a whole number of 4K pages`);
  }
  if (bytes > 1024 ** 4) throw new VmConfigError(`Invalid memory size '${text}': at most 1T`);
  return bytes;
}

/**
 * Checks a configuration, reads its files and opens its disks.
 *
 * @param c the configuration
 * @returns what the builder builds from
 * @throws {VmConfigError} one line naming the problem
 * @example
 * ```ts ignore
 * const rc = resolveConfig({ kernel: "bzImage", memory: "512M" });
 * ```
 */
export function resolveConfig(c: VmConfig): ResolvedConfig {
  const files: BootFile[] = [];
  try {
    return resolveWith(c, files);
  } catch (e) {
    // A mistake found after the kernel was read: its memory goes now.
    for (const f of files) f.close();
    throw e;
  }
}

function resolveWith(c: VmConfig, files: BootFile[]): ResolvedConfig {
  const cpus = c.cpus ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > MAX_CPUS) {
    throw new VmConfigError(`Invalid vCPU count ${cpus}: use 1 to ${MAX_CPUS}`);
  }
  const memoryBytes = memoryOf(c.memory);
  if (c.kernel !== undefined && c.flat !== undefined) {
    throw new VmConfigError("Give a kernel or a flat image, not both");
  }
  if (c.kernel === undefined && c.flat === undefined) {
    throw new VmConfigError("Nothing to boot: give a kernel");
  }
  if (c.kernel !== undefined && memoryBytes < MIN_MEMORY_BYTES) {
    throw new VmConfigError(`Invalid memory size: at least 16M is needed`);
  }
  if (c.kernel === undefined) {
    for (const [what, v] of [["initrd", c.initrd], ["append", c.append]] as const) {
      if (v !== undefined) throw new VmConfigError(`--${what} needs --kernel`);
    }
  }
  const disks = c.disks ?? [];
  const virtio = c.virtio ?? [];
  if (disks.length > 0 && c.kernel === undefined) {
    throw new VmConfigError("--disk needs --kernel");
  }
  // A mode given, or --vnc (default mode); the VNC password file is read here.
  const display = resolveDisplay(c.display, c.vnc);
  // A tablet when asked for, or with --vnc unless its tablet=off leaves
  // pointer events to the PS/2 mouse.
  if (c.tablet && display?.vnc?.tablet === false) {
    throw new VmConfigError("--vnc tablet=off conflicts with a virtio-tablet-pci device");
  }
  const tablet = c.tablet ?? (display?.vnc !== undefined && display.vnc.tablet !== false);
  if (c.tablet && c.kernel === undefined) throw new VmConfigError("A tablet needs --kernel");
  // A display is a PCI function too (the Bochs display, devices/display).
  const displayFn = c.display !== "none" && (c.display !== undefined || c.vnc !== undefined);
  checkPciFunctionCount(
    disks.length + virtio.length + netFunctionCount(c) + (tablet ? 1 : 0) + (displayFn ? 1 : 0),
  );
  let kernelIn: Uint8Array | BootFile | undefined;
  let initrdIn: Uint8Array | BootFile | undefined;
  if (c.kernel !== undefined) {
    kernelIn = readInput("kernel", c.kernel, files);
    checkKernel(bytesOf(kernelIn)!, typeof c.kernel === "string" ? c.kernel : "kernel");
    if (c.initrd !== undefined) initrdIn = readInput("initrd", c.initrd, files);
  }
  const kernel = bytesOf(kernelIn);
  if (display) {
    const { width, height } = display;
    const ok = (v: number) => Number.isInteger(v) && v >= 16 && v <= 4096;
    if (!ok(width) || !ok(height)) {
      throw new VmConfigError(`Invalid display size ${width}x${height}: 16 to 4096 pixels each`);
    }
    if (width * height * 4 > FRAMEBUFFER_BYTES) {
      throw new VmConfigError(`Display ${width}x${height} is too large for the framebuffer`);
    }
    const elf = kernel !== undefined && kernel[0] === 0x7f && kernel[1] === 0x45 &&
      kernel[2] === 0x4c && kernel[3] === 0x46;
    if (kernel === undefined || elf) {
      throw new VmConfigError("A display needs a bzImage kernel (screen_info)");
    }
  }
  let opened: OpenedDisk[];
  try {
    opened = openDisks(disks.map((d) => ({
      path: d.path,
      readOnly: d.readOnly ?? false,
      aio: d.aio ?? "threads",
      iothread: d.iothread,
      cache: d.cache ?? "writeback",
      serial: d.serial,
      numQueues: d.numQueues,
      snapshot: d.snapshot,
    })));
  } catch (e) {
    if (e instanceof DiskError) throw new VmConfigError(e.message);
    throw e;
  }
  let net: ResolvedNetDevices;
  try {
    net = resolveNetDevices(c);
  } catch (e) {
    for (const d of opened) d.file.close();
    throw e;
  }
  // Last, so that nothing after it can fail and leave it open.
  let serialFd: number | undefined;
  if (typeof c.serial === "object") {
    const path = c.serial.file;
    serialFd = libc.open(cstring(path), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644);
    if (serialFd < 0) {
      const why = new ErrnoError("open", errno()).description;
      closeNetDevices(net);
      for (const d of opened) d.file.close();
      throw new VmConfigError(`Cannot write the serial output to ${path}: ${why}`);
    }
  }
  return {
    serialFd,
    cpus,
    memoryBytes,
    // Files named by path are read again after releaseBootFiles (a reboot).
    get kernel() {
      return bytesOf(kernelIn);
    },
    get initrd() {
      return bytesOf(initrdIn);
    },
    bootFiles: files,
    kernelFile: kernelIn instanceof BootFile ? kernelIn : undefined,
    unpackKernel: c.unpackKernel ?? true,
    cmdline: c.append ?? DEFAULT_CMDLINE,
    flat: c.flat,
    irqchip: c.irqchip ?? kernel !== undefined,
    disks: opened,
    virtio,
    devices: c.devices ?? [],
    serial: c.serial ?? "stream",
    onReboot: c.onReboot ?? "exit",
    logUnclaimed: c.logUnclaimed ?? false,
    kvmPath: c.kvmPath,
    syncDiskIo: c.syncDiskIo ?? false,
    placement: c.placement ?? {},
    net,
    display,
    tablet,
  };
}

function bytesOf(input: Uint8Array | BootFile | undefined): Uint8Array | undefined {
  return input instanceof BootFile ? input.bytes : input;
}

/**
 * Gives back the memory of the kernel and initrd read from files, once the
 * guest's RAM holds them (the next read of `rc.kernel` / `rc.initrd`, for a
 * reboot, reads the files again).
 *
 * @param rc the resolved configuration
 * @example
 * ```ts ignore
 * const built = await buildMachine(rc, env);
 * releaseBootFiles(rc);
 * ```
 */
export function releaseBootFiles(rc: ResolvedConfig): void {
  for (const f of rc.bootFiles) f.release();
}

/**
 * Releases what {@link resolveConfig} opened (the disks' fds and locks).
 *
 * @param rc the resolved configuration
 * @example
 * ```ts ignore
 * closeResolved(rc);
 * ```
 */
export function closeResolved(rc: ResolvedConfig): void {
  closeNetDevices(rc.net);
  if (rc.serialFd !== undefined) closeFd(rc.serialFd);
  for (const d of rc.disks) {
    // What the guest was told is written reaches the disk before the lock goes.
    if (!d.file.readOnly) libc.fdatasync(d.file.fd);
    d.file.close();
  }
}
