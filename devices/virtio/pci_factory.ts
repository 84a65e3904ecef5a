/**
 * The device factory (devices/device_spec.ts) for PCI bus 0 with virtio-pci
 * functions, run in every vCPU Worker: it rebuilds the register side of
 * each function over the shared state the machine created, and maps the
 * config ports and the MMIO window. Everything asynchronous leaves the
 * Worker as an eventfd write: queue kicks and status changes to the
 * device's loop ({@link EventFdLink}), MSI-X messages to irqfds, MSI-X
 * table changes to the thread that owns GSI routing.
 *
 * @module
 */
import type { BusMapping, DeviceContext } from "../device_spec.ts";
import { eventFdWrite } from "../../sys/fd.ts";
import { PCI_MMIO32_END, PCI_MMIO32_START } from "../pci/bar_allocator.ts";
import { PCI_CONFIG_ADDRESS_PORT } from "../pci/constants.ts";
import { PciHostBridge } from "../pci/host_bridge.ts";
import { PciMmioWindow } from "../pci/mmio_window.ts";
import { PciBus } from "../pci/pci_bus.ts";
import { EventFdLink, VirtioPciDevice, type VirtioPciSpec, type VirtioPciState } from "./pci.ts";

/** One virtio-pci function, as plain postMessage-able data. */
export interface VirtioPciFunctionArgs {
  /** Its shape. */
  spec: VirtioPciSpec;
  /** Shared registers ({@link VirtioPciDevice.sharedState} of the machine's instance). */
  state: VirtioPciState;
  /** Slot on bus 0. */
  slot: number;
  /** Kick eventfd per queue (also registered as KVM ioeventfds). */
  notifyFds: number[];
  /** Status-change eventfd polled by the device's loop. */
  controlFd: number;
  /** GSI of its INTx line (lowered when the guest reads ISR). */
  intxGsi: number;
  /** irqfd per MSI-X vector: a pending vector unmasked by the guest fires here. */
  msixFds?: number[];
  /** Written when the guest changes an MSI-X vector or enable bit: re-read the table, re-route. */
  msixRouteFd?: number;
}

/** Arguments of {@link virtioPciBus}. */
export interface VirtioPciBusArgs {
  /** CONFIG_ADDRESS latch ({@link PciBus.addressState}). */
  addressState: SharedArrayBuffer;
  /** The host bridge's config space ({@link PciHostBridge.state}). */
  hostBridge: SharedArrayBuffer;
  /** The virtio functions. */
  functions: VirtioPciFunctionArgs[];
  /** The MMIO window BARs are allocated in (default 0xC0000000..0xFEC00000). */
  window?: { base: number; size: number };
}

/**
 * Builds bus 0 for one thread.
 *
 * @param args shared state and fds
 * @param ctx this thread's context (interrupt lines)
 * @returns the 0xCF8 port range and the MMIO window
 * @example
 * ```ts ignore
 * const spec = { module: new URL("./pci_factory.ts", import.meta.url).href,
 *   factory: "virtioPciBus", args };
 * ```
 */
export function virtioPciBus(args: VirtioPciBusArgs, ctx: DeviceContext): BusMapping[] {
  const bus = new PciBus({
    addressState: args.addressState,
    hostBridge: new PciHostBridge({ state: args.hostBridge }),
  });
  const devices: VirtioPciDevice[] = [];
  for (const f of args.functions) {
    const dev = new VirtioPciDevice(f.spec, { state: f.state });
    dev.link = new EventFdLink({ notifyFds: f.notifyFds, controlFd: f.controlFd });
    const line = ctx.irq(f.intxGsi);
    dev.interrupt = {
      msix(vector: number) {
        const fd = f.msixFds?.[vector];
        if (fd !== undefined) eventFdWrite(fd);
      },
      intx(level: boolean) {
        line.set(level);
      },
    };
    const sink = dev.interrupt;
    dev.msix.hooks = {
      deliver: (v: number) => sink.msix(v),
      vectorChanged: f.msixRouteFd === undefined ? undefined : () => eventFdWrite(f.msixRouteFd!),
    };
    bus.add(dev, f.slot);
    devices.push(dev);
  }
  const base = args.window?.base ?? PCI_MMIO32_START;
  const size = args.window?.size ?? PCI_MMIO32_END - PCI_MMIO32_START;
  return [
    { space: "pio", base: PCI_CONFIG_ADDRESS_PORT, size: 8, device: bus.configIo },
    { space: "mmio", base, size, device: new PciMmioWindow(base, devices) },
  ];
}
