/**
 * The shapes of the TypeScript virtio-net device: its options and counters.
 *
 * @module
 */
import type { Tap } from "../../sys/tun.ts";
import type { EventLoop } from "../../mainloop/types.ts";

/** Counters of one virtio-net device; every frame not delivered lands in one. */
export interface NetStats {
  /** Frames delivered to the guest. */
  rxPackets: number;
  /** Their bytes (without the virtio header). */
  rxBytes: number;
  /** Frames read from the tap and dropped (too large for the buffers, link down). */
  rxDropped: number;
  /** Times RX stopped reading the tap for lack of guest buffers. */
  rxStalls: number;
  /** Frames the guest sent that reached the tap. */
  txPackets: number;
  /** Their bytes (without the virtio header). */
  txBytes: number;
  /** Guest frames dropped (oversized, link down, or refused by the tap). */
  txDropped: number;
}

/** Options for {@link VirtioNet}. */
export interface VirtioNetOptions {
  /** The open tap (12-byte vnet header). */
  tap: Tap;
  /** The loop that owns the queues; the tap fd is served there. */
  loop: EventLoop;
  /** MAC address (6 bytes). */
  mac: Uint8Array;
  /** Queue size (power of two, default 256). */
  queueSize?: number;
  /** Offer UFO (default: whether the tap accepts TUN_F_UFO). */
  ufo?: boolean;
}
