/**
 * The closed set of virtio rules a guest driver can break, and the error a
 * device model throws when it does (the device then marks itself
 * DEVICE_NEEDS_RESET). Anything else failing in device code is a VMM bug.
 *
 * @module
 */
/**
 * The closed set of rules a guest driver can break that make a device stop
 * (DEVICE_NEEDS_RESET), each named after the virtio 1.x requirement.
 * Anything else that goes wrong in device code is a VMM bug, not a guest one.
 */
export const VIRTIO_VIOLATIONS = [
  /** 2.7: Queue Size is a power of two no larger than the device's maximum. */
  "queue-size",
  /** 2.7: descriptor table 16-, driver ring 2-, device ring 4-byte aligned. */
  "ring-alignment",
  /** 2.7: the rings lie in guest RAM. */
  "ring-outside-ram",
  /** 2.7.6: the driver makes at most Queue Size buffers available ahead of the device. */
  "avail-index",
  /** 2.7.6: a ring entry names a descriptor in the table. */
  "descriptor-head",
  /** 2.7.5: a chain's `next` stays in the table. */
  "descriptor-next",
  /** 2.7.5: a chain ends (no loops). */
  "descriptor-loop",
  /** 2.7.5: a buffer lies in guest RAM. */
  "buffer-outside-ram",
  /** 2.7.5.3: INDIRECT only when negotiated, never inside an indirect table. */
  "unexpected-indirect",
  /** 2.7.5.3.1: an indirect descriptor does not set NEXT. */
  "indirect-next",
  /** 2.7.5.3.1: an indirect table is a non-empty multiple of 16 bytes in RAM. */
  "indirect-table",
  /** 2.7.4.2: device-readable buffers come before device-writable ones. */
  "readable-after-writable",
  /** 2.7.5: a chain has at most Queue Size descriptors and fits used.len. */
  "chain-too-long",
  /** 2.7.13.2: a buffer is made available again only after the device used it. */
  "head-in-flight",
  /** 5.2.6: a block request carries a 16-byte header and a status byte. */
  "blk-request-format",
  /** 5.8.6.2: an eventq buffer is device-writable and holds a virtio_input_event (8 bytes). */
  "input-event-buffer",
] as const;

/** One of {@link VIRTIO_VIOLATIONS}. */
export type VirtioViolation = typeof VIRTIO_VIOLATIONS[number];

/**
 * A guest driver broke the virtqueue rules. Catchable domain condition: the
 * device marks itself DEVICE_NEEDS_RESET and stops using the queue.
 * `violation` names the rule; null where a caller gave none (a device that
 * should name it).
 */
export class VirtqueueError extends Error {
  /** Which rule, from {@link VIRTIO_VIOLATIONS}. */
  readonly violation: VirtioViolation | null;
  /**
   * @param message what the guest got wrong
   * @param violation which rule that breaks
   */
  constructor(message: string, violation: VirtioViolation | null = null) {
    super(violation ? `${violation}: ${message}` : message);
    this.name = "VirtqueueError";
    this.violation = violation;
  }
}
