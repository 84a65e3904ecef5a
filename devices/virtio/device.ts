/**
 * The contract between a virtio transport and a device model (virtio-blk,
 * ...): the device offers features and a config layout, and once the
 * driver is ready it processes its queues on one loop thread, completing
 * requests through {@link VirtioContext}.
 *
 * @module
 */
import type { GuestMemory } from "../../memory/guest_memory.ts";
import type { SplitQueue } from "./queue.ts";
import type { VirtioConfigSelect } from "./config_select.ts";

/**
 * Where a device's interrupts go. `msix` is an irqfd write in the VMM (GSI
 * routed by the MSI-X hooks); `intx` drives the INTx line (an IrqLine).
 * Both are callable from any thread.
 */
export interface InterruptSink {
  /** Fires MSI-X vector `vector`. */
  msix(vector: number): void;
  /** Sets the INTx level. */
  intx(level: boolean): void;
  /**
   * The irqfd behind MSI-X vector `vector`, for a kernel data path (vhost)
   * to signal directly; absent where vectors are not irqfds.
   */
  msixFd?(vector: number): number | undefined;
}

/** What an activated device uses to reach its queues and the driver. */
export interface VirtioContext {
  /** Guest RAM. */
  readonly mem: GuestMemory;
  /** Queues by index; null where the driver left a queue disabled. */
  readonly queues: readonly (SplitQueue | null)[];
  /** The features the driver accepted. */
  readonly features: bigint;
  /**
   * Interrupts the driver for queue `index` if it wants one (checks
   * used_event / NO_INTERRUPT). Call after pushing used entries.
   */
  signalUsed(index: number): void;
  /**
   * Sends a configuration-change interrupt (after the device changed its
   * config bytes, e.g. virtio-net link status). Optional for contexts that
   * have no config interrupt.
   */
  signalConfig?(): void;
  /**
   * Interrupts for queue `index` unconditionally (a kernel data path such
   * as vhost already applied the driver's suppression rules).
   */
  interruptQueue?(index: number): void;
  /**
   * Hands queue `index`'s kick eventfd (the KVM ioeventfd) to the device:
   * the context stops reading it, so a kernel data path can own it.
   * Returns null where kicks do not arrive through an eventfd.
   */
  detachNotify?(index: number): number | null;
  /**
   * The irqfd a kernel data path may signal directly for queue `index`
   * (MSI-X on and the queue's vector valid; the VMM disarms it while the
   * guest masks the vector), or null: then interrupts must go through
   * {@link VirtioContext.interruptQueue}.
   */
  queueIrqFd?(index: number): number | null;
  /**
   * The driver broke the rules (or the host failed): set
   * DEVICE_NEEDS_RESET, log once, stop processing until reset. `cause` is
   * the error caught, if any: a VirtqueueError names the guest's violation;
   * anything else is a device bug the transport reports as such.
   */
  markBroken(reason: string, cause?: unknown): void;
  /** Whether the device was marked broken since activation. */
  readonly broken: boolean;
}

/** A virtio device model, independent of the transport. */
export interface VirtioDevice {
  /** Virtio device id (VIRTIO_ID_*). */
  readonly deviceType: number;
  /** Number of virtqueues. */
  readonly numQueues: number;
  /** Maximum size of each queue (power of two). */
  readonly queueMaxSize: number;
  /**
   * Features offered, device-specific and ring ones (the transport adds
   * VIRTIO_F_VERSION_1).
   */
  readonly deviceFeatures: bigint;
  /** Bytes of device-specific configuration. */
  readonly configSize: number;
  /** PCI class code to show (e.g. 0x010000 for storage). */
  readonly pciClass: number;
  /** Selector bytes of a config the driver writes to (virtio-input); none: read-only. */
  readonly configSelect?: VirtioConfigSelect;
  /** Writes the device-specific configuration into `config`. */
  initConfig(config: Uint8Array): void;
  /** DRIVER_OK: the queues are set up; runs on the device's loop thread. */
  activate(ctx: VirtioContext): void;
  /** The driver kicked queue `index` (loop thread). */
  processQueue(index: number): void;
  /**
   * `processQueue` starts no promise reactions (it resolves no promise and
   * calls no async function or callback that may): the transport then
   * registers the queues' kick eventfds `sync` (mainloop/types.ts
   * `CallbackOptions`), and a kick costs the loop no heap.
   */
  readonly syncQueues?: boolean;
  /**
   * Device reset: forget in-flight work. Call `drained` (at once, or later
   * on the loop thread) when no request started before the reset can still
   * touch guest RAM; until then the driver reads a non-zero device_status,
   * so it cannot reuse the buffers.
   */
  reset(drained: () => void): void;
}
