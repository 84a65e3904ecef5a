/**
 * What a VM is made of, as the user says it: {@link VmConfig}. The CLI's
 * flags, a TypeScript program and the control plane all produce one; the
 * builder (vm/builder.ts) is the only thing that turns it into a machine.
 *
 * @module
 */
import type { DeviceSpec } from "../devices/device_spec.ts";

/**
 * One virtio-blk disk.
 *
 * @example
 * ```ts
 * import type { DiskConfig } from "./config.ts";
 * const scratch: DiskConfig = { path: "scratch.img", aio: "io_uring", iothread: 0 };
 * console.log(scratch.path);
 * ```
 */
export interface DiskConfig {
  /** Image path (a regular file or a block device, a multiple of 512 bytes). */
  path: string;
  /** Open read-only (default false). */
  readOnly?: boolean;
  /** Which aio engine serves it (default `threads`, the posix-aio-compat pool). */
  aio?: "threads" | "io_uring";
  /** Which iothread runs its queue (default: the main loop). */
  iothread?: number;
  /** `none` opens with O_DIRECT (default `writeback`). */
  cache?: "none" | "writeback";
  /** Serial number the guest reads with GET_ID. */
  serial?: string;
  /** Request queues (default: one per vCPU, as QEMU's virtio-blk-pci). */
  numQueues?: number;
  /**
   * Write to a temporary copy of the image that vanishes with the VMM
   * (QEMU's `-snapshot`); the image is only read (default false).
   */
  snapshot?: boolean;
}

/**
 * A virtio device model served on a loop thread (the main loop, or an
 * iothread): the builder gives it a PCI slot, BAR, MSI-X GSIs, ioeventfds
 * and irqfds, and builds it on its loop from this postMessage-able spec.
 * The factory (`module`'s export `factory`) has the shape of
 * `VirtioBackendFactory` in vm/virtio_backend.ts.
 *
 * @example
 * ```ts
 * import type { VirtioFunctionConfig } from "./config.ts";
 * const rng: VirtioFunctionConfig = {
 *   module: new URL("./my_rng.ts", import.meta.url).href,
 *   factory: "virtioRngBackend",
 *   args: { bytesPerSecond: 1 << 20 },
 *   name: "virtio-rng0",
 * };
 * console.log(rng.factory);
 * ```
 */
export interface VirtioFunctionConfig {
  /** Module URL of the factory. */
  module: string;
  /** Name of the exported factory. */
  factory: string;
  /** Its arguments (structured-cloneable: fds, numbers, SharedArrayBuffers). */
  args?: unknown;
  /** Which iothread runs its queues (default: the main loop). */
  iothread?: number;
  /** Name for logs and introspection (`virtio-net0`). */
  name?: string;
}

/**
 * A tap-backed network interface (virtio-net).
 *
 * @example
 * ```ts
 * import type { NicConfig } from "./config.ts";
 * const nic: NicConfig = { ifname: "tap0", mac: "52:54:00:12:34:56" };
 * console.log(nic.ifname);
 * ```
 */
export interface NicConfig {
  /** The tap interface name. */
  ifname: string;
  /** MAC address `52:54:00:12:34:56`. */
  mac?: string;
  /** Which iothread runs its queues. */
  iothread?: number;
  /** Use the kernel's vhost-net where available. */
  vhost?: boolean;
  /** Name for QMP (`set_link`, `x-query-net`); default `netN`. */
  id?: string;
}

/**
 * A flat real-mode image started at 0000:entry on every vCPU (test and demo guests).
 *
 * @example
 * ```ts
 * import type { FlatImage } from "./config.ts";
 * // hlt at 0x1000
 * const image: FlatImage = { code: new Uint8Array([0xf4]), loadAddr: 0x1000, entry: 0x1000 };
 * console.log(image.entry);
 * ```
 */
export interface FlatImage {
  /** The bytes. */
  code: Uint8Array;
  /** Guest-physical address of code[0]. */
  loadAddr: number;
  /** Real-mode IP (CS = 0). */
  entry: number;
}

/**
 * Where each thread role runs and at what priority.
 *
 * @example
 * ```ts
 * import type { PlacementConfig } from "./config.ts";
 * const pinned: PlacementConfig = { vcpuAffinity: [[2], [3]] };
 * console.log(pinned.vcpuAffinity?.length);
 * ```
 */
export interface PlacementConfig {
  /** CPUs per vCPU index. */
  vcpuAffinity?: readonly (readonly number[])[];
  /** SCHED_FIFO priority of the vCPU threads. */
  vcpuFifoPriority?: number;
}

/**
 * What the guest's first serial port is connected to.
 *
 * @example
 * ```ts
 * import type { SerialConfig } from "./config.ts";
 * const cli: SerialConfig = "stdio";
 * console.log(cli);
 * ```
 */
export type SerialConfig =
  /** The process's stdout (vCPU threads write to fd 1; the CLI's choice). */
  | "stdio"
  /** {@link SerialConsole} streams on the Vm (the library's default). */
  | "stream"
  /**
   * A file the output is written to, created or truncated (QEMU's
   * `-serial file:PATH`); the guest reads nothing.
   */
  | { file: string };

/**
 * A whole VM. Only `kernel` (or `flat`) is needed; everything else has a
 * default.
 *
 * @example
 * ```ts
 * import type { VmConfig } from "./config.ts";
 * const config: VmConfig = {
 *   kernel: "bzImage",
 *   initrd: "initrd.img",
 *   append: "console=ttyS0",
 *   cpus: 2,
 *   memory: "512M",
 *   disks: [{ path: "disk.img" }],
 * };
 * ```
 */
export interface VmConfig {
  /** bzImage or vmlinux (PVH): a path, or the file's bytes. */
  kernel?: string | Uint8Array;
  /** Initial ramdisk: a path or bytes. */
  initrd?: string | Uint8Array;
  /** Kernel command line (default `console=ttyS0`). */
  append?: string;
  /** Instead of a kernel: a flat real-mode image (no irqchip unless asked). */
  flat?: FlatImage;
  /** vCPUs, 1..254 (default 1). */
  cpus?: number;
  /** Guest RAM: bytes, or a size such as `512M`, `1G` (default 256M). */
  memory?: number | string;
  /** virtio-blk disks, one PCI function each. */
  disks?: readonly DiskConfig[];
  /** Other virtio devices served on loops, one PCI function each. */
  virtio?: readonly VirtioFunctionConfig[];
  /** Your own PIO/MMIO devices, built in every vCPU thread under the big lock. */
  devices?: readonly DeviceSpec[];
  /** The first serial port: `stream` (default) or `stdio`. */
  serial?: SerialConfig;
  /** What a guest reboot does: `exit` ends the VM (default), `restart` rebuilds it. */
  onReboot?: "exit" | "restart";
  /** Create the in-kernel irqchip and PIT (default: true with a kernel, false with `flat`). */
  irqchip?: boolean;
  /** Log the first access to each unclaimed port or MMIO address. */
  logUnclaimed?: boolean;
  /** The KVM device (default /dev/kvm). */
  kvmPath?: string;
  /**
   * Unpack a bzImage's kernel on the host, once, and boot later runs from the
   * cached copy instead of letting the guest decompress it each time
   * (default true; xz and zstd payloads, kernels named by path; KASLR kept).
   */
  unpackKernel?: boolean;
  /** Serve disk I/O inline on the loop (tests and benchmarks). */
  syncDiskIo?: boolean;
  /** Thread placement and priority. */
  placement?: PlacementConfig;
  /** tap network interfaces (virtio-net). */
  nics?: readonly NicConfig[];
  /** A virtio-rng device. */
  rng?: boolean | { bytesPerSecond?: number };
  /** A virtio-console port wired like the serial port. */
  console?: "virtio" | "none";
  /** QMP control socket (`unix:PATH,server,wait=off`). */
  qmp?: string;
  /** A display (`none`, or a framebuffer of this size; 1024x768 when only `vnc` is given). */
  display?: "none" | { width: number; height: number };
  /**
   * Serve the display over VNC, as QEMU spells it: `:N` (127.0.0.1:5900+N)
   * or `HOST:N`, then `,password-file=PATH` (VNC authentication with the
   * file's first line), `,websocket[=PORT]` (for noVNC; 5700+N by default)
   * and `,tablet=off` (no virtio tablet: pointer events drive the PS/2 mouse).
   */
  vnc?: string;
  /**
   * A virtio tablet (QEMU's `virtio-tablet-pci`) that VNC pointer events
   * drive; default: one when `vnc` is given without `tablet=off`. Without a
   * tablet they drive the PS/2 mouse on the i8042.
   */
  tablet?: boolean;
}

/**
 * A configuration the builder cannot honour; the message is one line for a user.
 *
 * @example
 * ```ts
 * import { VmConfigError } from "./config.ts";
 * const e = new VmConfigError("Invalid vCPU count 0: use 1 to 254");
 * console.log(e.name, e.message);
 * ```
 */
export class VmConfigError extends Error {
  /**
   * Creates the error.
   *
   * @param message one line naming the problem
   */
  constructor(message: string) {
    super(message);
    this.name = "VmConfigError";
  }
}

/**
 * Most vCPUs the machine describes (xAPIC ids fit in 8 bits; the IOAPIC takes one).
 *
 * @example
 * ```ts
 * import { MAX_CPUS } from "./config.ts";
 * console.log(MAX_CPUS);
 * ```
 */
export const MAX_CPUS = 254;
/**
 * Default guest RAM.
 *
 * @example
 * ```ts
 * import { DEFAULT_MEMORY_BYTES } from "./config.ts";
 * console.log(DEFAULT_MEMORY_BYTES);
 * ```
 */
export const DEFAULT_MEMORY_BYTES = 256 << 20;
/**
 * Least guest RAM for a kernel.
 *
 * @example
 * ```ts
 * import { MIN_MEMORY_BYTES } from "./config.ts";
 * console.log(MIN_MEMORY_BYTES);
 * ```
 */
export const MIN_MEMORY_BYTES = 16 << 20;
/**
 * The kernel command line when none is given.
 *
 * @example
 * ```ts
 * import { DEFAULT_CMDLINE } from "./config.ts";
 * console.log(DEFAULT_CMDLINE);
 * ```
 */
export const DEFAULT_CMDLINE = "console=ttyS0";
