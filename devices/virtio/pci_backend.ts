/**
 * The device side of a virtio-pci function, on one loop thread (main loop
 * or iothread): it owns the queues, runs the device model and raises
 * interrupts through the sink its transport was built with. Kicks reach it
 * as eventfds (KVM ioeventfd) or as plain {@link VirtioPciBackend.notify}
 * calls.
 *
 * @module
 */
import type { GuestMemory } from "../../memory/guest_memory.ts";
import type { EventLoop } from "../../mainloop/types.ts";
import { eventFdDrain } from "../../sys/fd.ts";
import {
  featureBit,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_ISR_CONFIG,
  VIRTIO_PCI_ISR_QUEUE,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from "./constants.ts";
import type { InterruptSink, VirtioContext, VirtioDevice } from "./device.ts";
import { SplitQueue, type VirtioViolation, VirtqueueError } from "./queue.ts";
import type { VirtioPciDevice } from "./pci.ts";
import type { VirtioTransportLink } from "./pci_layout.ts";

/**
 * The device side of a virtio-pci function, living on one loop thread: it
 * builds the queues at DRIVER_OK, runs the device model on kicks, routes
 * interrupts to MSI-X or INTx, and turns any guest misbehaviour into
 * DEVICE_NEEDS_RESET. Interrupts go to the sink the transport was built
 * with.
 *
 * @example
 * ```ts ignore
 * // In one thread: the transport's link forwards to the backend built next.
 * let backend: VirtioPciBackend | undefined;
 * const transport = new VirtioPciDevice(virtioPciSpecOf(device), {
 *   interrupt,
 *   link: { notify: (q) => backend?.notify(q), statusChanged: () => backend?.statusChanged() },
 * });
 * backend = new VirtioPciBackend({ transport, device, mem });
 * ```
 */
export class VirtioPciBackend implements VirtioTransportLink, VirtioContext {
  readonly #transport: VirtioPciDevice;
  readonly #device: VirtioDevice;
  readonly #interrupt: InterruptSink;
  readonly #queues: SplitQueue[];
  readonly #active: (SplitQueue | null)[];
  #features = 0n;
  #activated = false;
  #broken = false;
  #loggedBroken = false;
  #resetting = false;
  readonly #ackReset = () => {
    this.#resetting = false;
    this.#transport.ackReset();
  };
  readonly #log: (message: string) => void;
  #loop: EventLoop | null = null;
  #notifyFds: readonly number[] = [];
  readonly #onBroken: ((violation: VirtioViolation | null, cause: unknown) => void) | null;
  /** Guest RAM. */
  readonly mem: GuestMemory;

  /**
   * @param options the transport (this thread's instance, built with its
   *   interrupt sink), the device model, guest RAM, where the one line
   *   about a broken device goes (default console.error), and `onBroken`,
   *   told of every time the device breaks: the guest's named violation, or
   *   null for anything else (a device bug; tests and fuzzers fail on those)
   */
  constructor(
    options: {
      transport: VirtioPciDevice;
      device: VirtioDevice;
      mem: GuestMemory;
      log?: (message: string) => void;
      onBroken?: (violation: VirtioViolation | null, cause: unknown) => void;
    },
  ) {
    const { transport, device, mem } = options;
    if (!transport.interrupt) throw new TypeError("The transport has no interrupt sink");
    this.#log = options.log ?? console.error;
    this.#onBroken = options.onBroken ?? null;
    this.#transport = transport;
    this.#device = device;
    this.#interrupt = transport.interrupt;
    this.mem = mem;
    this.#queues = [];
    this.#active = [];
    for (let i = 0; i < device.numQueues; i++) {
      this.#queues.push(new SplitQueue(mem, device.queueMaxSize));
      this.#active.push(null);
    }
    device.initConfig(transport.deviceConfig);
  }

  /** Queues by index (null until activated or when disabled). */
  get queues(): readonly (SplitQueue | null)[] {
    return this.#active;
  }
  /** Negotiated features. */
  get features(): bigint {
    return this.#features;
  }
  /** Whether the device is marked broken. */
  get broken(): boolean {
    return this.#broken;
  }
  /** Whether DRIVER_OK was processed and queues are live. */
  get activated(): boolean {
    return this.#activated;
  }

  /**
   * Registers the queues' kick eventfds (KVM ioeventfds) and, for a
   * register side in other threads, the status-change eventfd of its
   * {@link EventFdLink}, on the loop.
   *
   * @param loop the loop this backend runs on
   * @param notifyFds one eventfd per queue
   * @param controlFd the EventFdLink's status eventfd, if any
   */
  attach(loop: EventLoop, notifyFds: readonly number[], controlFd?: number): void {
    this.#loop = loop;
    this.#notifyFds = notifyFds;
    if (controlFd !== undefined) {
      loop.setFdHandler(controlFd, {
        read: () => {
          eventFdDrain(controlFd);
          this.statusChanged();
        },
      });
    }
    const sync = this.#device.syncQueues === true;
    notifyFds.forEach((fd, q) => {
      loop.setFdHandler(fd, {
        read: () => {
          eventFdDrain(fd);
          this.notify(q);
        },
        sync,
      });
    });
  }

  /**
   * A kick on queue `index` (from an eventfd or the notify register).
   *
   * @param index queue index
   */
  notify(index: number): void {
    if (!this.#activated || this.#broken || !this.#active[index]) return;
    try {
      this.#device.processQueue(index);
    } catch (e) {
      this.#fail(e);
    }
  }

  /** Acts on device_status: reset, DRIVER_OK, FAILED. */
  statusChanged(): void {
    const t = this.#transport;
    if (t.resetPending) {
      if (this.#resetting) return;
      this.#resetting = true;
      this.#reset();
      this.#device.reset(this.#ackReset);
      return;
    }
    const status = t.status;
    if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !this.#activated && !this.#broken) {
      this.#activate();
    }
  }

  #reset(): void {
    this.#activated = false;
    this.#broken = false;
    this.#loggedBroken = false;
    this.#features = 0n;
    for (let i = 0; i < this.#queues.length; i++) {
      this.#queues[i].reset();
      this.#active[i] = null;
    }
  }

  #activate(): void {
    const t = this.#transport;
    const features = t.driverFeatures;
    this.#features = features;
    try {
      for (let i = 0; i < this.#queues.length; i++) {
        const r = t.queueRegs(i);
        if (!r.enabled) continue;
        this.#queues[i].configure({
          size: r.size,
          desc: r.desc,
          avail: r.avail,
          used: r.used,
          eventIdx: (features & featureBit(VIRTIO_RING_F_EVENT_IDX)) !== 0n,
          indirect: (features & featureBit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0n,
        });
        this.#active[i] = this.#queues[i];
      }
      this.#activated = true;
      this.#device.activate(this);
    } catch (e) {
      this.#fail(e);
      return;
    }
    // A kick may have reached this loop before the DRIVER_OK event did.
    for (let i = 0; i < this.#active.length; i++) this.notify(i);
  }

  #fail(e: unknown): void {
    this.markBroken(e instanceof Error ? e.message : String(e), e);
  }

  /**
   * Interrupts for queue `index` if the driver wants it.
   *
   * @param index queue index
   */
  signalUsed(index: number): void {
    const q = this.#active[index];
    if (!q || !q.needsInterrupt()) return;
    const t = this.#transport;
    if (t.msix.enabled) {
      const v = t.queueVector(index);
      if (v !== VIRTIO_MSI_NO_VECTOR) t.msix.signal(v);
    } else t.raiseIsr(VIRTIO_PCI_ISR_QUEUE, this.#interrupt);
  }

  /**
   * Interrupts for queue `index` without the suppression check (vhost
   * checked it already).
   *
   * @param index queue index
   */
  interruptQueue(index: number): void {
    if (!this.#active[index]) return;
    const t = this.#transport;
    if (t.msix.enabled) {
      const v = t.queueVector(index);
      if (v !== VIRTIO_MSI_NO_VECTOR) t.msix.signal(v);
    } else t.raiseIsr(VIRTIO_PCI_ISR_QUEUE, this.#interrupt);
  }

  /**
   * Stops reading queue `index`'s kick eventfd and returns it, for a
   * kernel data path (vhost) to own; null when kicks come in-thread.
   *
   * @param index queue index
   * @returns the eventfd, or null
   */
  detachNotify(index: number): number | null {
    const fd = this.#notifyFds[index];
    if (fd === undefined || !this.#loop) return null;
    this.#loop.setFdHandler(fd, null);
    return fd;
  }

  /**
   * The irqfd of queue `index`'s MSI-X vector when a kernel data path may
   * signal it directly: MSI-X enabled and a vector assigned. Masked or not:
   * the VMM disarms a vector's irqfd while the guest masks it (the MSI-X
   * gate hooks), so what the data path signals then waits, shows in the
   * PBA, and is delivered on unmask.
   *
   * @param index queue index
   * @returns the irqfd, or null
   */
  queueIrqFd(index: number): number | null {
    const t = this.#transport;
    if (!this.#active[index] || !t.msix.enabled) return null;
    const v = t.queueVector(index);
    if (v === VIRTIO_MSI_NO_VECTOR) return null;
    return this.#interrupt.msixFd?.(v) ?? null;
  }

  /** Sends a configuration-change interrupt. */
  signalConfig(): void {
    const t = this.#transport;
    if (t.msix.enabled) {
      const v = t.configVector;
      if (v !== VIRTIO_MSI_NO_VECTOR) t.msix.signal(v);
    } else t.raiseIsr(VIRTIO_PCI_ISR_CONFIG, this.#interrupt);
  }

  /**
   * Marks the device broken: DEVICE_NEEDS_RESET, one log line, no more
   * queue processing until the driver resets it.
   *
   * @param reason what went wrong
   * @param cause the error caught: a VirtqueueError names the guest's
   *   violation; any other error is reported as a device error
   */
  markBroken(reason: string, cause?: unknown): void {
    const violation = cause instanceof VirtqueueError ? cause.violation : null;
    const guest = cause === undefined || violation !== null;
    this.#broken = true;
    this.#transport.setNeedsReset();
    this.#onBroken?.(violation, cause);
    if (!this.#loggedBroken) {
      this.#loggedBroken = true;
      const what = guest ? reason : `Device error: ${reason}`;
      this.#log(`virtio device ${this.#device.deviceType}: ${what}; needs reset`);
    }
    this.signalConfig();
  }
}
