/**
 * PCI bus 0 with virtio-pci functions as the machine wires them to KVM, run
 * in every vCPU Worker (a device factory). Each function's register
 * side is built over the shared state the builder made, wired once at
 * construction: kicks and status changes leave as eventfd writes to the
 * device's loop, MSI-X vectors as irqfd writes, INTx through the interrupt
 * line. Two things that must track guest programming happen synchronously
 * in the vCPU thread that made the change, under the big lock:
 *
 * - MSI-X: every vector has its own GSI and irqfd; after each guest update
 *   of a table entry or of the enable/mask bits, the whole routing table is
 *   set with one KVM_SET_GSI_ROUTING, before any vector it unmasked can be
 *   delivered (so an unmask never fires through a stale route). A vector's
 *   irqfd is armed (KVM_IRQFD) only while MSI-X is on and the vector
 *   unmasked (`MsixHooks.vectorGate`): vhost signals the irqfd itself,
 *   and while it is disarmed those signals wait in the eventfd, show in the
 *   PBA, and are delivered once on unmask (Cloud Hypervisor disarms the
 *   irqfd of a masked vector the same way).
 * - BAR 0 moves: the queue-notify ioeventfds follow the BAR.
 *
 * Both depend on addresses the guest chose, so neither may kill the VM
 * when KVM refuses it: a BAR moved onto another device's BAR makes
 * KVM_IOEVENTFD fail with EEXIST; that queue's doorbell then stays a plain
 * MMIO exit (the transport's notify register rings the same eventfd), the
 * first registration keeps the address (as the first-found BAR wins in
 * the MMIO window), registration is retried whenever any BAR moves, and
 * one line is logged. A routing table KVM refuses leaves the previous one
 * in place, with one line logged.
 *
 * The config ports are claimed as 0xCF8 (size 1, dword accesses arrive
 * there) and 0xCFC..0xCFF, leaving 0xCF9 to the reset control register.
 *
 * @module
 */
import type { BusMapping, DeviceContext } from "../devices/device_spec.ts";
import type { BusDevice } from "../devices/bus.ts";
import { eventFdDrain, eventFdWrite } from "../sys/fd.ts";
import { PCI_MMIO32_END, PCI_MMIO32_START } from "../devices/pci/bar_allocator.ts";
import { PciHostBridge } from "../devices/pci/host_bridge.ts";
import { PciMmioWindow } from "../devices/pci/mmio_window.ts";
import { PciBus } from "../devices/pci/pci_bus.ts";
import type { PciDevice } from "../devices/pci/pci_device.ts";
import { BochsDisplay, type BochsDisplayState } from "../devices/display/bochs_display.ts";
import {
  EventFdLink,
  VIRTIO_PCI_BAR,
  VIRTIO_PCI_NOTIFY_MULTIPLIER,
  VIRTIO_PCI_NOTIFY_OFFSET,
  VirtioPciDevice,
  type VirtioPciSpec,
  type VirtioPciState,
} from "../devices/virtio/pci.ts";
import { type GsiRoute, type IoEventFd, KvmVm } from "../kvm/vm.ts";
import { ErrnoError } from "../sys/errno.ts";
import { IOAPIC_PINS } from "../vm/layout.ts";

/** KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC. */
export const KVM_IRQCHIP_PIC_MASTER = 0;
/** The slave PIC. */
export const KVM_IRQCHIP_PIC_SLAVE = 1;
/** The IOAPIC. */
export const KVM_IRQCHIP_IOAPIC = 2;
/** Notify register writes are 16-bit (the queue index), as Linux's vp_notify does. */
export const NOTIFY_ACCESS_BYTES = 2;
/**
 * The length a notify ioeventfd is registered with first: 0, any length, as
 * QEMU does where KVM allows it (KVM_CAP_IOEVENTFD_ANY_LENGTH). KVM then
 * also puts it on its fast MMIO bus: on Intel an EPT-misconfig exit at the
 * doorbell signals the eventfd without decoding the instruction. A KVM that
 * refuses length 0 (EINVAL) gets {@link NOTIFY_ACCESS_BYTES}.
 */
export const NOTIFY_ANY_LENGTH = 0;

/** One virtio-pci function of the machine, as plain postMessage-able data. */
export interface PciFunctionArgs {
  /** Its shape. */
  spec: VirtioPciSpec;
  /** Shared registers ({@link VirtioPciDevice.sharedState} of the builder's instance). */
  state: VirtioPciState;
  /** Slot on bus 0. */
  slot: number;
  /** Kick eventfd per queue (also registered as KVM ioeventfds). */
  notifyFds: number[];
  /** Status-change eventfd polled by the device's loop. */
  controlFd: number;
  /** GSI of its INTx line (lowered when the guest reads ISR). */
  intxGsi: number;
  /** GSI of MSI-X vector 0 (vector v uses msiGsiBase + v). */
  msiGsiBase: number;
  /** irqfd per MSI-X vector. */
  msixFds: number[];
  /**
   * Two f64 of shared memory (guarded by the big lock, built by
   * {@link newIoeventfdState}): the BAR 0 address the notify ioeventfds
   * belong at (or -1), and the bit mask of queues registered there.
   */
  ioeventfdBase: SharedArrayBuffer;
}

/** Arguments of {@link pciDevices}. */
export interface PciDevicesArgs {
  /** The VM fd (process-wide). */
  vmFd: number;
  /** CONFIG_ADDRESS latch. */
  addressState: SharedArrayBuffer;
  /** The host bridge's config space. */
  hostBridge: SharedArrayBuffer;
  /** The functions. */
  functions: PciFunctionArgs[];
  /** The Bochs display (devices/display), when the machine has a display. */
  display?: PciDisplayArgs;
}

/** The Bochs display's part of {@link PciDevicesArgs}. */
export interface PciDisplayArgs {
  /** Its registers ({@link BochsDisplay.sharedState} of the builder's instance). */
  state: BochsDisplayState;
  /** The framebuffer's geometry words. */
  geometry: SharedArrayBuffer;
  /** Bytes of video memory (BAR 0). */
  vramSize: number;
  /** Slot on bus 0. */
  slot: number;
}

/**
 * The GSI routing table KVM needs: the default pin routes (GSIs 0-15 to
 * both PICs and the IOAPIC, 16-23 to the IOAPIC; KVM_SET_GSI_ROUTING
 * replaces KVM's default table, so they must stay), plus one MSI route per
 * programmed vector of each function whose MSI-X is enabled.
 *
 * @param functions each function's MSI-X state and first GSI
 * @returns the routes
 * @example
 * ```ts
 * import { gsiRoutes } from "./pci_devices.ts";
 * console.log(gsiRoutes([]).length); // 40
 * ```
 */
export function gsiRoutes(
  functions: readonly { device: VirtioPciDevice; msiGsiBase: number }[],
): GsiRoute[] {
  const routes: GsiRoute[] = [];
  for (let pin = 0; pin < IOAPIC_PINS; pin++) {
    routes.push({ gsi: pin, kind: "irqchip", irqchip: KVM_IRQCHIP_IOAPIC, pin });
    if (pin < 16) {
      routes.push({
        gsi: pin,
        kind: "irqchip",
        irqchip: pin < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
        pin: pin & 7,
      });
    }
  }
  for (const f of functions) {
    const msix = f.device.msix;
    if (!msix.enabled) continue;
    for (let v = 0; v < msix.vectors; v++) {
      const m = msix.message(v);
      // An entry the guest never programmed has no destination yet.
      if (m.addressLo === 0 && m.addressHi === 0) continue;
      routes.push({
        gsi: f.msiGsiBase + v,
        kind: "msi",
        addressLo: m.addressLo,
        addressHi: m.addressHi,
        data: m.data,
      });
    }
  }
  return routes;
}

/**
 * The shared state {@link syncNotifyIoeventfds} keeps per function.
 *
 * @returns a fresh state: nothing registered
 * @example
 * ```ts
 * import { newIoeventfdState } from "./pci_devices.ts";
 * console.log(new Float64Array(newIoeventfdState())[0]); // -1
 * ```
 */
export function newIoeventfdState(): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(24);
  // BAR 0 address registered at, queues registered, length registered with.
  new Float64Array(sab).set([-1, 0, NOTIFY_ANY_LENGTH]);
  return sab;
}

/** What {@link syncNotifyIoeventfds} needs of a VM. */
export interface IoeventfdVm {
  /** KVM_IOEVENTFD; throws ErrnoError when KVM refuses. */
  ioeventfd(e: IoEventFd, deassign?: boolean): void;
}

/**
 * Makes a function's queue-notify ioeventfds match where BAR 0 decodes now:
 * deregisters the old place, registers the new one, and retries queues that
 * KVM refused before (another device's BAR held the address). Registrations
 * KVM refuses leave that queue's doorbell to the MMIO exit path. Idempotent:
 * the state lives in shared memory, so any thread may call it under the big
 * lock.
 *
 * @param vm the VM
 * @param f the function
 * @param device its transport (this thread's instance)
 * @param log where the one line about a refused doorbell goes
 * @example
 * ```ts ignore
 * syncNotifyIoeventfds(vm, args, transport);
 * ```
 */
export function syncNotifyIoeventfds(
  vm: IoeventfdVm,
  f: PciFunctionArgs,
  device: VirtioPciDevice,
  log: (message: string) => void = console.error,
): void {
  const cell = new Float64Array(f.ioeventfdBase);
  if (cell.length < 3) throw new RangeError("ioeventfdBase must come from newIoeventfdState()");
  const old = cell[0];
  let mask = cell[1];
  const n = f.notifyFds.length;
  const full = n >= 31 ? -1 : (1 << n) - 1;
  const now = device.barAddress(VIRTIO_PCI_BAR);
  if (old === now && (now < 0 || (mask | ~full) === -1)) return;
  const at = (base: number, q: number) => ({
    addr: base + VIRTIO_PCI_NOTIFY_OFFSET + VIRTIO_PCI_NOTIFY_MULTIPLIER * q,
    len: cell[2],
    fd: f.notifyFds[q],
  });
  const moved = old !== now;
  if (moved) {
    for (let q = 0; q < n && old >= 0; q++) {
      if (!(mask & (1 << q))) continue;
      try {
        vm.ioeventfd(at(old, q), true);
      } catch (e) {
        if (!(e instanceof ErrnoError)) throw e;
      }
    }
    mask = 0;
    cell[0] = now;
  }
  let refused: string | null = null;
  for (let q = 0; q < n && now >= 0; q++) {
    if (mask & (1 << q)) continue;
    try {
      vm.ioeventfd(at(now, q));
      mask |= 1 << q;
    } catch (e) {
      if (!(e instanceof ErrnoError)) throw e;
      if (e.code === "EINVAL" && cell[2] === NOTIFY_ANY_LENGTH && mask === 0) {
        // A KVM without any-length ioeventfds: the exact access size, from now on.
        cell[2] = NOTIFY_ACCESS_BYTES;
        q--;
        continue;
      }
      refused ??= e.code;
    }
  }
  cell[1] = mask;
  if (refused && moved) {
    log(
      `virtio-pci 00:${f.slot.toString(16).padStart(2, "0")}.0: guest put BAR 0 at 0x${
        now.toString(16)
      }, where KVM refuses its queue doorbell (${refused}: another device's BAR is there); ` +
        "kicks take the MMIO exit path",
    );
  }
}

/** 0xCFC..0xCFF as seen by the bus's config port device (offset 4). */
class ConfigDataPort implements BusDevice {
  readonly #io: BusDevice;
  constructor(io: BusDevice) {
    this.#io = io;
  }
  read(offset: number, data: Uint8Array): void {
    this.#io.read(offset + 4, data);
  }
  write(offset: number, data: Uint8Array): void {
    this.#io.write(offset + 4, data);
  }
}

/**
 * The two VM operations the PCI functions need from the vCPU thread: KVM's
 * in production, a recorder in tests.
 */
export interface PciVmOps {
  /** Replaces the whole GSI routing table. */
  setGsiRouting(routes: readonly GsiRoute[]): void;
  /** Registers (or with deassign, removes) an ioeventfd. */
  ioeventfd(e: IoEventFd, deassign?: boolean): void;
  /** KVM_IRQFD: arms (or with deassign, disarms) an irqfd on a GSI. */
  irqfd(fd: number, gsi: number, deassign?: boolean): void;
}

/**
 * Builds bus 0 for one thread over the given VM operations.
 *
 * @param args shared state, fds and GSIs
 * @param ctx this thread's context
 * @param vm GSI routing and ioeventfds
 * @returns the config ports and the 32-bit MMIO window
 * @example
 * ```ts ignore
 * const maps = buildPciBus(args, ctx, new KvmVm(args.vmFd, 0));
 * ```
 */
export function buildPciBus(
  args: PciDevicesArgs,
  ctx: DeviceContext,
  vm: PciVmOps,
): BusMapping[] {
  const bus = new PciBus({
    addressState: args.addressState,
    hostBridge: new PciHostBridge({ state: args.hostBridge }),
  });
  const devices: VirtioPciDevice[] = [];
  const routed: { device: VirtioPciDevice; msiGsiBase: number }[] = [];
  let routeRefused = false;
  const routesChanged = () => {
    try {
      vm.setGsiRouting(gsiRoutes(routed));
    } catch (e) {
      // The guest programmed MSI-X messages KVM will not route: keep the old table.
      if (!(e instanceof ErrnoError)) throw e;
      if (!routeRefused) {
        console.error(`MSI-X routing refused by KVM (${e.code}); vectors keep their old routes`);
      }
      routeRefused = true;
    }
  };
  let irqfdRefused = false;
  const gate = (fd: number | undefined, gsi: number, open: boolean) => {
    if (fd === undefined) return;
    try {
      vm.irqfd(fd, gsi, !open);
    } catch (e) {
      if (!(e instanceof ErrnoError)) throw e;
      if (!irqfdRefused) {
        console.error(`MSI-X: KVM_IRQFD ${open ? "assign" : "deassign"} failed (${e.code})`);
      }
      irqfdRefused = true;
    }
  };
  // Any BAR move may free an address another function's doorbell wants.
  const resync = () => {
    args.functions.forEach((g, i) => devices[i] && syncNotifyIoeventfds(vm, g, devices[i]));
  };
  for (const f of args.functions) {
    const line = ctx.irq(f.intxGsi);
    const fds = f.msixFds;
    const dev: VirtioPciDevice = new VirtioPciDevice(f.spec, {
      state: f.state,
      link: new EventFdLink({ notifyFds: f.notifyFds, controlFd: f.controlFd }),
      interrupt: {
        msix(vector: number) {
          const fd = fds[vector];
          if (fd !== undefined) eventFdWrite(fd);
        },
        intx(level: boolean) {
          line.set(level);
        },
      },
      msix: {
        routesChanged,
        vectorGate(vector: number, open: boolean) {
          gate(fds[vector], f.msiGsiBase + vector, open);
        },
        // Disarmed, the irqfd is only an eventfd: what vhost wrote is still there.
        collectMasked(vector: number) {
          const fd = fds[vector];
          return fd !== undefined && eventFdDrain(fd);
        },
      },
      onBarRemap(bar: number) {
        if (bar === VIRTIO_PCI_BAR) resync();
      },
    });
    bus.add(dev, f.slot);
    devices.push(dev);
    routed.push({ device: dev, msiGsiBase: f.msiGsiBase });
  }
  const windowDevices: PciDevice[] = [...devices];
  const d = args.display;
  if (d) {
    const vga = new BochsDisplay({ state: d.state, geometry: d.geometry, vramSize: d.vramSize });
    bus.add(vga, d.slot);
    windowDevices.push(vga);
  }
  return [
    { space: "pio", base: 0xcf8, size: 1, device: bus.configIo },
    { space: "pio", base: 0xcfc, size: 4, device: new ConfigDataPort(bus.configIo) },
    {
      space: "mmio",
      base: PCI_MMIO32_START,
      size: PCI_MMIO32_END - PCI_MMIO32_START,
      device: new PciMmioWindow(PCI_MMIO32_START, windowDevices),
    },
  ];
}

/**
 * The machine's bus 0 in a vCPU thread, on KVM (a device factory).
 *
 * @param args shared state, fds and GSIs
 * @param ctx this thread's context
 * @returns the config ports and the 32-bit MMIO window
 * @example
 * ```ts ignore
 * m.addDevice({ module: new URL("./pci_devices.ts", import.meta.url).href,
 *   factory: "pciDevices", args });
 * ```
 */
export function pciDevices(args: PciDevicesArgs, ctx: DeviceContext): BusMapping[] {
  return buildPciBus(args, ctx, new KvmVm(args.vmFd, 0));
}
