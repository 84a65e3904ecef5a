/**
 * `--disk` on a running machine: each image becomes a virtio-blk-pci
 * function on bus 0. The main thread owns the plumbing (BAR addresses,
 * eventfds, irqfds, the initial GSI routing, iothreads); the device model
 * and its aio backend live on the loop that owns the queue (the main loop,
 * or an iothread with `iothread=N`), where queue kicks arrive through KVM
 * ioeventfds and completions raise interrupts through irqfds (MSI-X) or
 * KVM_IRQ_LINE (INTx). The vCPU side is {@link pciDevices}.
 *
 * @module
 */
import type { Machine } from "./machine.ts";
import {
  gsiRoutes,
  MSI_GSI_BASE,
  newIoeventfdState,
  type PciDevicesArgs,
  type PciFunctionArgs,
  syncNotifyIoeventfds,
} from "./pci_devices.ts";
import type { EventLoop } from "../mainloop/types.ts";
import { IOThread } from "../mainloop/iothread.ts";
import { closeFd, eventFd, eventFdWrite } from "../sys/fd.ts";
import { ErrnoError } from "../sys/errno.ts";
import { GuestMemory, type GuestMemoryLayout } from "../memory/guest_memory.ts";
import { KvmIrqLine } from "../kvm/vm.ts";
import { PciBarAllocator } from "../devices/pci/bar_allocator.ts";
import { PciHostBridge } from "../devices/pci/host_bridge.ts";
import { PciBus } from "../devices/pci/pci_bus.ts";
import { VirtioPciBackend, VirtioPciDevice, virtioPciSpecOf } from "../devices/virtio/pci.ts";
import { VirtioBlock } from "../devices/virtio/block.ts";
import {
  type DiskFile,
  type DiskOptions,
  openDisk,
  parseDiskOption,
} from "../devices/virtio/disk_file.ts";
import { SyncAio } from "../devices/virtio/sync_io.ts";
import { ioUringAvailable } from "../aio/io_uring.ts";
import { acquireAio, type SharedAio } from "../aio/pool_registry.ts";
import type { PciIrqRoute } from "../acpi/dsdt.ts";

/** A disk the user cannot have (missing, no permission, locked, odd size, bad option). */
export class DiskError extends Error {
  /** @param message one line naming the image and the problem */
  constructor(message: string) {
    super(message);
    this.name = "DiskError";
  }
}

/** A parsed and opened `--disk`. */
export interface OpenedDisk {
  /** What the user asked for. */
  options: DiskOptions;
  /** The open, locked image. */
  file: DiskFile;
}

/**
 * Parses and opens every `--disk` value before the VM exists, so a user's
 * mistake ends with one line. On failure nothing stays open.
 *
 * @param values the option strings, in order
 * @returns the open disks
 * @throws DiskError naming the image and the problem
 * @example
 * ```ts ignore
 * const disks = openDisks(["disk.img,aio=io_uring"]);
 * ```
 */
export function openDisks(values: readonly string[]): OpenedDisk[] {
  if (values.length > MAX_DISKS) {
    throw new DiskError(
      `Too many --disk options (${values.length}): at most ${MAX_DISKS}, one PCI slot each`,
    );
  }
  const out: OpenedDisk[] = [];
  try {
    for (const value of values) {
      let options: DiskOptions;
      try {
        options = parseDiskOption(value);
      } catch (e) {
        throw new DiskError(`Invalid --disk '${value}': ${(e as Error).message}`);
      }
      if (options.aio === "io_uring") {
        const why = ioUringAvailable();
        if (why !== null) {
          throw new DiskError(
            `Disk image ${options.path}: io_uring is not available (${why}); use aio=threads`,
          );
        }
      }
      try {
        out.push({ options, file: openDisk(options) });
      } catch (e) {
        if (e instanceof ErrnoError) {
          const why = e.code === "EISDIR"
            ? "it is a directory"
            : e.message.replace(/^.*\((.*)\)$/, "$1");
          throw new DiskError(`Cannot open disk image ${options.path}: ${why}`);
        }
        throw new DiskError((e as Error).message);
      }
    }
  } catch (e) {
    for (const d of out) d.file.close();
    throw e;
  }
  return out;
}

/** First PCI slot used for disks (slot 0 is the host bridge). */
export const FIRST_DISK_SLOT = 1;
/** Most disks: one per PCI slot of bus 0 after the host bridge. */
export const MAX_DISKS = 32 - FIRST_DISK_SLOT;

/**
 * The GSI an INTx pin of a slot is wired to: the usual swizzle over the
 * IOAPIC's PCI pins 16..23.
 *
 * @param slot PCI device number
 * @param pin 0 = INTA .. 3 = INTD
 * @returns the GSI
 * @example
 * ```ts
 * import { intxGsi } from "./disks.ts";
 * console.log(intxGsi(1, 0)); // 17
 * ```
 */
export function intxGsi(slot: number, pin: number): number {
  return 16 + ((slot + pin) & 7);
}

/**
 * The _PRT of the root bridge for the given slots (all four pins each).
 *
 * @param slots populated slots
 * @returns routes for acpi's pciIrqRoutes
 * @example
 * ```ts
 * import { pciIrqRoutesFor } from "./disks.ts";
 * console.log(pciIrqRoutesFor([1]).length); // 4
 * ```
 */
export function pciIrqRoutesFor(slots: readonly number[]): PciIrqRoute[] {
  const routes: PciIrqRoute[] = [];
  for (const slot of slots) {
    for (let pin = 0; pin < 4; pin++) routes.push({ slot, pin, gsi: intxGsi(slot, pin) });
  }
  return routes;
}

/** What {@link startDiskBackend} needs, as postMessage-able data. */
export interface DiskBackendArgs {
  /** Registry key of this backend in its thread. */
  id: number;
  /** Guest RAM layout. */
  memory: GuestMemoryLayout;
  /** The VM fd (for INTx). */
  vmFd: number;
  /** The image. */
  disk: { fd: number; size: number; readOnly: boolean };
  /** Serial for GET_ID. */
  serial?: string;
  /** Which aio engine. */
  aio: "threads" | "io_uring" | "sync";
  /** The function. */
  fn: PciFunctionArgs;
}

interface Running {
  loop: EventLoop;
  aio: SharedAio | null;
  fds: number[];
}

const running = new Map<number, Running>();

/**
 * Builds a disk's device model, aio engine and backend on the calling
 * loop's thread and starts serving its queue (the iothread entry point,
 * also called directly for the main loop). Writes the device config, so
 * it must finish before any vCPU runs.
 *
 * @param loop the loop that owns the queue
 * @param args the disk and its function
 * @example
 * ```ts ignore
 * await io.call(DISKS_MODULE, "startDiskBackend", args);
 * ```
 */
export function startDiskBackend(loop: EventLoop, args: DiskBackendArgs): void {
  const mem = GuestMemory.fromLayout(args.memory);
  // One engine per loop and kind, shared by its disks (QEMU: one per AioContext).
  const aio = args.aio === "sync" ? null : acquireAio(loop, args.aio);
  const device = new VirtioBlock({
    disk: args.disk,
    aio: aio?.backend ?? new SyncAio(),
    serial: args.serial,
    loop,
  });
  const f = args.fn;
  const transport = new VirtioPciDevice(f.spec, { state: f.state });
  const line = new KvmIrqLine(args.vmFd, f.intxGsi);
  const msixFds = f.msixFds;
  const interrupt = {
    msix(vector: number) {
      const fd = msixFds[vector];
      if (fd !== undefined) eventFdWrite(fd);
    },
    intx(level: boolean) {
      line.set(level);
    },
  };
  const backend = new VirtioPciBackend({ transport, device, mem, interrupt });
  backend.attach(loop, f.notifyFds, f.controlFd);
  running.set(args.id, { loop, aio, fds: [...f.notifyFds, f.controlFd] });
}

/**
 * Stops serving a disk: unhooks its fds and waits for its in-flight I/O.
 *
 * @param _loop the loop (unused; the iothread calling convention)
 * @param id the backend's id
 * @example
 * ```ts ignore
 * await io.call(DISKS_MODULE, "stopDiskBackend", id);
 * ```
 */
export async function stopDiskBackend(_loop: EventLoop, id: number): Promise<void> {
  const r = running.get(id);
  if (!r) return;
  running.delete(id);
  for (const fd of r.fds) r.loop.setFdHandler(fd, null);
  if (!r.aio) return;
  // A broken engine may never drain: do not let it hold the VMM's exit.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => timer = setTimeout(resolve, STOP_TIMEOUT_MS));
  await Promise.race([r.aio.release(), late]);
  clearTimeout(timer);
}

/** How long stopping a disk waits for its in-flight I/O. */
const STOP_TIMEOUT_MS = 10_000;

const THIS_MODULE = new URL(import.meta.url).href;
const PCI_DEVICES = new URL("./pci_devices.ts", import.meta.url).href;
let nextBackendId = 0;

/** The disks of one boot, wired to a machine. */
export interface AttachedDisks {
  /** PCI slots used, for the DSDT's _PRT. */
  readonly slots: number[];
  /** Stops the backends and iothreads and closes the eventfds (after the VM stopped). */
  close(): Promise<void>;
}

/**
 * Wires disks into a machine before {@link Machine.setup}: one
 * virtio-blk-pci function per disk, BARs assigned, ioeventfds, irqfds and
 * GSI routing set, backends started on their loops, and the vCPU-side
 * factory added.
 *
 * @param m the machine (irqchip on, not set up yet)
 * @param loop the main loop
 * @param disks from {@link openDisks}
 * @param options `sync`: serve I/O inline on the loop (tests and benchmarks)
 * @returns a handle to stop them
 * @example
 * ```ts ignore
 * const attached = await attachDisks(m, loop, openDisks(o.disks));
 * ```
 */
export async function attachDisks(
  m: Machine,
  loop: EventLoop,
  disks: readonly OpenedDisk[],
  options: { sync?: boolean } = {},
): Promise<AttachedDisks> {
  const fds: number[] = [];
  const iothreads = new Map<number, IOThread>();
  const started: { id: number; io?: IOThread }[] = [];
  const slots: number[] = [];
  const close = async () => {
    for (const s of started) {
      if (s.io) await s.io.call(THIS_MODULE, "stopDiskBackend", s.id).catch(() => {});
      else await stopDiskBackend(loop, s.id);
    }
    for (const io of iothreads.values()) await io.stop();
    for (const fd of fds) closeFd(fd);
    fds.length = 0;
  };
  const newFd = () => {
    const fd = eventFd();
    fds.push(fd);
    return fd;
  };
  try {
    const bus = new PciBus({ hostBridge: new PciHostBridge() });
    const allocator = new PciBarAllocator();
    const functions: PciFunctionArgs[] = [];
    const routed: { device: VirtioPciDevice; msiGsiBase: number }[] = [];
    let nextGsi = MSI_GSI_BASE;
    const backends: { args: DiskBackendArgs; iothread?: number }[] = [];
    disks.forEach((d, i) => {
      const slot = FIRST_DISK_SLOT + i;
      const disk = { fd: d.file.fd, size: d.file.size, readOnly: d.file.readOnly };
      // The spec only: the real model is built on the loop that owns the queue.
      const spec = virtioPciSpecOf(
        new VirtioBlock({ disk, aio: new SyncAio(), serial: d.options.serial }),
      );
      const transport = new VirtioPciDevice(spec);
      allocator.assign(transport);
      bus.add(transport, slot);
      const vectors = transport.msix.vectors;
      const fn: PciFunctionArgs = {
        spec,
        state: transport.sharedState,
        slot,
        notifyFds: Array.from({ length: spec.numQueues }, newFd),
        controlFd: newFd(),
        intxGsi: intxGsi(slot, 0),
        msiGsiBase: nextGsi,
        msixFds: Array.from({ length: vectors }, newFd),
        ioeventfdBase: newIoeventfdState(),
      };
      nextGsi += vectors;
      functions.push(fn);
      routed.push({ device: transport, msiGsiBase: fn.msiGsiBase });
      slots.push(slot);
      syncNotifyIoeventfds(m.vm, fn, transport);
      // Pool and iothread Workers load under --allow-ffi alone (sys/worker_url.ts).
      const aio: DiskBackendArgs["aio"] = options.sync ? "sync" : d.options.aio;
      const iothread = d.options.iothread;
      backends.push({
        args: {
          id: nextBackendId++,
          memory: m.memory.layout,
          vmFd: m.vm.fd,
          disk,
          serial: d.options.serial,
          aio,
          fn,
        },
        iothread,
      });
    });
    m.vm.setGsiRouting(gsiRoutes(routed));
    for (const f of functions) {
      f.msixFds.forEach((fd, v) => m.vm.irqfd(fd, f.msiGsiBase + v));
    }
    for (const b of backends) {
      if (b.iothread === undefined) {
        startDiskBackend(loop, b.args);
        started.push({ id: b.args.id });
        continue;
      }
      let io = iothreads.get(b.iothread);
      if (!io) {
        io = await IOThread.start({ name: `iothread-${b.iothread}` });
        iothreads.set(b.iothread, io);
      }
      await io.call(THIS_MODULE, "startDiskBackend", b.args);
      started.push({ id: b.args.id, io });
    }
    const args: PciDevicesArgs = {
      vmFd: m.vm.fd,
      addressState: bus.addressState,
      hostBridge: bus.hostBridge.state(),
      functions,
    };
    m.addDevice({ module: PCI_DEVICES, factory: "pciDevices", args });
    return { slots, close };
  } catch (e) {
    await close();
    throw e;
  }
}
