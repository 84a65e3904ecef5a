/**
 * virtio-input (virtio spec 5.8) as an absolute tablet, like QEMU's
 * `virtio-tablet-pci`: the host stages events of one report, then
 * {@link VirtioInput.sync} adds SYN_REPORT and writes the whole report into
 * buffers the driver posted on the event queue, or drops the whole report
 * (counted) when the driver has not posted enough: nothing is queued on
 * the host, so a guest that never reads costs nothing. The status queue
 * (LEDs and the like, which a tablet has none of) is consumed and returned.
 *
 * Runs on the loop thread that owns its queues (the main loop: the VNC
 * server feeds it in-thread). Delivering a report allocates nothing.
 *
 * @module
 */
import { featureBit, VIRTIO_RING_F_EVENT_IDX } from "./constants.ts";
import type { VirtioContext, VirtioDevice } from "./device.ts";
import type { VirtioConfigSelect } from "./config_select.ts";
import { DescriptorChain, type SplitQueue, VirtqueueError } from "./queue.ts";
import {
  EV_SYN,
  SYN_REPORT,
  tabletConfigSelect,
  VIRTIO_ID_INPUT,
  VIRTIO_INPUT_CONFIG_SIZE,
} from "./input_config.ts";

export * from "./input_config.ts";

/** The event queue (device to driver). */
export const INPUT_EVENT_QUEUE = 0;
/** The status queue (driver to device). */
export const INPUT_STATUS_QUEUE = 1;
/** Bytes of `struct virtio_input_event` (le16 type, le16 code, le32 value). */
export const INPUT_EVENT_SIZE = 8;
/** Most events in one report, SYN_REPORT included; more are dropped with the report. */
export const INPUT_MAX_REPORT = 32;

/**
 * The virtio-input device model.
 *
 * @example
 * ```ts
 * import { VirtioInput } from "./input.ts";
 * const tablet = new VirtioInput();
 * tablet.event(3, 0, 16384); // ABS_X
 * console.log(tablet.sync(), tablet.stats.droppedReports); // false 1 (no driver yet)
 * ```
 */
export class VirtioInput implements VirtioDevice {
  /** VIRTIO_ID_INPUT. */
  readonly deviceType: number = VIRTIO_ID_INPUT;
  /** Event queue and status queue. */
  readonly numQueues: number = 2;
  /** Maximum queue size. */
  readonly queueMaxSize: number;
  /** Ring features only. */
  readonly deviceFeatures: bigint = featureBit(VIRTIO_RING_F_EVENT_IDX);
  /** `struct virtio_input_config`. */
  readonly configSize: number = VIRTIO_INPUT_CONFIG_SIZE;
  /** PCI class: input device, other (as QEMU shows virtio-input). */
  readonly pciClass: number = 0x098000;
  /** select/subsel choose what the config shows. */
  readonly configSelect: VirtioConfigSelect;
  /** Reports and events delivered, and those dropped for want of buffers. */
  readonly stats: {
    reports: number;
    events: number;
    droppedReports: number;
    droppedEvents: number;
  } = { reports: 0, events: 0, droppedReports: 0, droppedEvents: 0 };
  readonly #report = new Uint8Array(INPUT_MAX_REPORT * INPUT_EVENT_SIZE);
  readonly #view = new DataView(this.#report.buffer);
  /** One view per event slot, made once: delivering allocates nothing. */
  readonly #slots: Uint8Array[] = Array.from(
    { length: INPUT_MAX_REPORT },
    (_, i) => this.#report.subarray(i * INPUT_EVENT_SIZE, (i + 1) * INPUT_EVENT_SIZE),
  );
  readonly #chain: DescriptorChain;
  #count = 0;
  #overflow = false;
  #ctx: VirtioContext | null = null;

  /**
   * Builds the model.
   *
   * @param options queue size and the config pages (default: a tablet)
   */
  constructor(options: { queueSize?: number; configSelect?: VirtioConfigSelect } = {}) {
    this.queueMaxSize = options.queueSize ?? 64;
    this.configSelect = options.configSelect ?? tabletConfigSelect();
    this.#chain = new DescriptorChain(this.queueMaxSize);
  }

  /**
   * Fills the initial config: select 0 shows nothing, all zeros.
   *
   * @param config the device config bytes
   */
  initConfig(config: Uint8Array): void {
    config.fill(0);
  }

  /**
   * DRIVER_OK: reports may go to the event queue from now on.
   *
   * @param ctx queues and signalling
   */
  activate(ctx: VirtioContext): void {
    this.#ctx = ctx;
  }

  /**
   * Device reset: forgets the report being staged.
   *
   * @param drained called at once: nothing outlives a call
   */
  reset(drained: () => void): void {
    this.#ctx = null;
    this.#count = 0;
    this.#overflow = false;
    drained();
  }

  /**
   * A kick: the status queue is drained (a tablet has no LEDs); new event
   * buffers just wait for events.
   *
   * @param index the queue kicked
   */
  processQueue(index: number): void {
    const ctx = this.#ctx;
    const q = ctx?.queues[index];
    if (index !== INPUT_STATUS_QUEUE || !ctx || !q || ctx.broken) return;
    let done = 0;
    try {
      // Bounded per call: what is left waits for the next kick.
      do {
        q.disableNotification();
        while (done < this.queueMaxSize && q.pop(this.#chain)) {
          q.pushUsed(this.#chain.head, 0);
          done++;
        }
      } while (done < this.queueMaxSize && q.enableNotification());
    } catch (e) {
      ctx.markBroken(e instanceof Error ? e.message : String(e), e);
    } finally {
      if (done > 0 && !ctx.broken) ctx.signalUsed(INPUT_STATUS_QUEUE);
    }
  }

  /**
   * Stages one event of the current report.
   *
   * @param type EV_* type
   * @param code the type's code
   * @param value the value (signed 32-bit)
   */
  event(type: number, code: number, value: number): void {
    // The last slot is SYN_REPORT's.
    if (this.#count >= INPUT_MAX_REPORT - 1) {
      this.#overflow = true;
      return;
    }
    this.#stage(type, code, value);
  }

  #stage(type: number, code: number, value: number): void {
    const off = this.#count++ * INPUT_EVENT_SIZE;
    this.#view.setUint16(off, type, true);
    this.#view.setUint16(off + 2, code, true);
    this.#view.setInt32(off + 4, value | 0, true);
  }

  /**
   * Ends the report with SYN_REPORT and hands it to the driver whole, or
   * drops it whole when the driver has posted too few buffers (or is not
   * running).
   *
   * @returns whether the report reached the driver
   */
  sync(): boolean {
    this.#stage(EV_SYN, SYN_REPORT, 0);
    const n = this.#count;
    const overflow = this.#overflow;
    this.#count = 0;
    this.#overflow = false;
    const ctx = this.#ctx;
    const q = ctx?.queues[INPUT_EVENT_QUEUE];
    let delivered = false;
    if (ctx && q && !ctx.broken && !overflow) {
      try {
        delivered = q.pending() >= n && this.#deliver(q, ctx, n);
      } catch (e) {
        ctx.markBroken(e instanceof Error ? e.message : String(e), e);
      }
    }
    if (delivered) {
      this.stats.reports++;
      this.stats.events += n;
    } else {
      this.stats.droppedReports++;
      this.stats.droppedEvents += n;
    }
    return delivered;
  }

  #deliver(q: SplitQueue, ctx: VirtioContext, n: number): boolean {
    const c = this.#chain;
    for (let i = 0; i < n; i++) {
      if (!q.pop(c)) return false;
      if (c.readableCount !== 0 || c.writableBytes < INPUT_EVENT_SIZE) {
        throw new VirtqueueError(
          `eventq buffer of ${c.writableBytes} writable and ${c.readableBytes} readable bytes`,
          "input-event-buffer",
        );
      }
      // Linux posts one 8-byte buffer per event: one write, no view made.
      if (c.len[0] >= INPUT_EVENT_SIZE) ctx.mem.write(c.addr[0], this.#slots[i]);
      else c.scatter(ctx.mem, 0, this.#slots[i]);
      q.pushUsed(c.head, INPUT_EVENT_SIZE);
    }
    ctx.signalUsed(INPUT_EVENT_QUEUE);
    return true;
  }
}

// One registry per process even when the factory module is loaded twice
// (once statically, once as a blob module under --allow-ffi alone).
const REGISTRY = Symbol.for("denovmm.virtioInputs");
const inputs: Map<number, VirtioInput> =
  ((globalThis as Record<symbol, unknown>)[REGISTRY] as Map<number, VirtioInput>) ??
    ((globalThis as Record<symbol, unknown>)[REGISTRY] = new Map<number, VirtioInput>());

/**
 * Builds a virtio tablet on the loop that owns its queues and registers it
 * under `id`, so the same thread's VNC server can feed it
 * ({@link virtioInputById}).
 *
 * @param args registry id and an optional serial
 * @param _ctx the loop (unused: the tablet needs no timers)
 * @returns the device model and its release
 * @example
 * ```ts ignore
 * { module: INPUT_MODULE, factory: "virtioTabletBackend", args: { id: 0 } }
 * ```
 */
export function virtioTabletBackend(
  args: { id: number; serial?: string },
  _ctx: unknown,
): { device: VirtioInput; close(): void } {
  const device = new VirtioInput({ configSelect: tabletConfigSelect({ serial: args.serial }) });
  inputs.set(args.id, device);
  return {
    device,
    close() {
      if (inputs.get(args.id) === device) inputs.delete(args.id);
    },
  };
}

/**
 * The input device built by {@link virtioTabletBackend} in this thread.
 *
 * @param id its registry id
 * @returns the model, if any
 * @example
 * ```ts ignore
 * virtioInputById(0)?.event(EV_ABS, ABS_X, 100);
 * ```
 */
export function virtioInputById(id: number): VirtioInput | undefined {
  return inputs.get(id);
}

/** This module's URL, for `{module, factory}` specs. */
export const INPUT_MODULE: string = new URL(import.meta.url).href;
