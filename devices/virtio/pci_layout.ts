/**
 * The virtio 1.x modern PCI transport's shape (virtio spec 4.1): where each
 * structure sits in BAR 0, the static description of a function, its
 * shared state, and the link from the register side to the device side.
 *
 * @module
 */
import { eventFdWrite } from "../../sys/fd.ts";
import type { MsixHooks } from "../pci/msix.ts";
import type { PciBarRemapHook } from "../pci/pci_device.ts";
import type { InterruptSink, VirtioDevice } from "./device.ts";
import type { VirtioConfigSelect } from "./config_select.ts";

/** The BAR holding every virtio structure (64-bit memory, uses BARs 0-1). */
export const VIRTIO_PCI_BAR = 0;
/** Size of that BAR. */
export const VIRTIO_PCI_BAR_SIZE = 0x8000;
/** Offset of the common configuration in the BAR. */
export const VIRTIO_PCI_COMMON_OFFSET = 0x0000;
/** Offset of the ISR byte. */
export const VIRTIO_PCI_ISR_OFFSET = 0x1000;
/** Offset of the device-specific configuration. */
export const VIRTIO_PCI_DEVICE_OFFSET = 0x2000;
/** Offset of the notification area (queue q at +4q). */
export const VIRTIO_PCI_NOTIFY_OFFSET = 0x3000;
/** notify_off_multiplier: one dword per queue, so each can have an ioeventfd. */
export const VIRTIO_PCI_NOTIFY_MULTIPLIER = 4;
/** Offset of the MSI-X table. */
export const VIRTIO_PCI_MSIX_TABLE_OFFSET = 0x4000;
/** Offset of the MSI-X PBA. */
export const VIRTIO_PCI_MSIX_PBA_OFFSET = 0x6000;
/** PCI subsystem id used for modern virtio devices (QEMU's choice). */
export const VIRTIO_PCI_SUBSYSTEM_ID = 0x1100;

/**
 * How the register side tells the device side that something happened.
 * In-thread (tests, or a device living on the vCPU's own loop) this is the
 * {@link VirtioPciBackend} itself; across threads the VMM makes it write an
 * eventfd that the backend's loop polls.
 */
export interface VirtioTransportLink {
  /** The driver wrote queue `index`'s notify register (no ioeventfd). */
  notify(index: number): void;
  /** device_status changed in a way the backend must act on (reset, DRIVER_OK, FAILED). */
  statusChanged(): void;
}

/**
 * The cross-thread {@link VirtioTransportLink}: each event becomes an
 * eventfd write that the backend's loop polls (see
 * {@link VirtioPciBackend.attach}). The notify fds are the same eventfds the
 * VMM registers with KVM_IOEVENTFD, so the no-ioeventfd path and the
 * ioeventfd path wake the backend the same way. Plain data: build one in
 * each vCPU Worker from the fd numbers.
 *
 * @example
 * ```ts ignore
 * transport.link = new EventFdLink({ notifyFds: [kickFd], controlFd });
 * ```
 */
export class EventFdLink implements VirtioTransportLink {
  readonly #notifyFds: readonly number[];
  readonly #controlFd: number;

  /** @param fds one kick eventfd per queue, and the status-change eventfd */
  constructor(fds: { notifyFds: readonly number[]; controlFd: number }) {
    this.#notifyFds = fds.notifyFds;
    this.#controlFd = fds.controlFd;
  }

  /** @param index queue index */
  notify(index: number): void {
    const fd = this.#notifyFds[index];
    if (fd !== undefined) eventFdWrite(fd);
  }

  /** Wakes the backend to look at device_status. */
  statusChanged(): void {
    eventFdWrite(this.#controlFd);
  }
}

/** The static shape of a virtio PCI function. */
export interface VirtioPciSpec {
  /** Virtio device id. */
  deviceType: number;
  /** Number of queues. */
  numQueues: number;
  /** Maximum queue size. */
  queueMaxSize: number;
  /** Features offered (VIRTIO_F_VERSION_1 is added). */
  deviceFeatures: bigint;
  /** Bytes of device configuration. */
  configSize: number;
  /** PCI class code. */
  pciClass: number;
  /** MSI-X vectors (default: one per queue plus one for config). */
  msixVectors?: number;
  /**
   * Config bytes the driver writes to choose what the rest shows
   * (virtio-input); without it the device config is read-only.
   */
  configSelect?: VirtioConfigSelect;
}

/**
 * The transport shape a device model needs.
 *
 * @param device the device model
 * @returns its {@link VirtioPciSpec}
 * @example
 * ```ts ignore
 * const transport = new VirtioPciDevice(virtioPciSpecOf(blk));
 * ```
 */
export function virtioPciSpecOf(device: VirtioDevice): VirtioPciSpec {
  return {
    deviceType: device.deviceType,
    numQueues: device.numQueues,
    queueMaxSize: device.queueMaxSize,
    deviceFeatures: device.deviceFeatures,
    configSize: device.configSize,
    pciClass: device.pciClass,
    ...(device.configSelect ? { configSelect: device.configSelect } : {}),
  };
}

/** Shared state of a {@link VirtioPciDevice}, plain data for postMessage. */
export interface VirtioPciState {
  /** PCI configuration space. */
  pci: SharedArrayBuffer;
  /** Transport registers and device config bytes. */
  regs: SharedArrayBuffer;
  /** MSI-X table and PBA. */
  msix: SharedArrayBuffer;
}

/**
 * How one thread's instance of a function is wired, given once at
 * construction.
 */
export interface VirtioPciOptions {
  /** Shared state from another thread's instance (default: fresh registers). */
  state?: VirtioPciState;
  /** Where kicks and status changes go (default none: resets complete at once). */
  link?: VirtioTransportLink;
  /** Where MSI-X vectors and the INTx line go. */
  interrupt?: InterruptSink;
  /** MSI-X routing and gate hooks (delivery is through `interrupt`). */
  msix?: Omit<MsixHooks, "deliver">;
  /** Told when the guest moves a BAR. */
  onBarRemap?: PciBarRemapHook;
}

/**
 * Stores a little-endian value of data.length bytes (register reads).
 *
 * @param data destination
 * @param value the value (up to 2^53)
 */
export function putLe(data: Uint8Array, value: number): void {
  let v = value;
  for (let i = 0; i < data.length; i++) {
    data[i] = v % 256;
    v = Math.floor(v / 256);
  }
}

/**
 * Loads a little-endian value of data.length bytes (register writes).
 *
 * @param data source
 * @returns the value
 */
export function getLe(data: Uint8Array): number {
  let v = 0;
  for (let i = data.length - 1; i >= 0; i--) v = v * 256 + data[i];
  return v;
}
