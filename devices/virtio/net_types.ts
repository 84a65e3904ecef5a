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
  /**
   * Shared counters and link word ({@link NET_CONTROL_BYTES}, from
   * {@link netControlBuffer}): other threads read the counters, and the
   * device starts with the link the word says.
   */
  control?: SharedArrayBuffer;
}

/** The counters in {@link NetStats} order, as QMP names them. */
export const NET_STAT_NAMES = [
  "rx-packets",
  "rx-bytes",
  "rx-dropped",
  "rx-stalls",
  "tx-packets",
  "tx-bytes",
  "tx-dropped",
] as const;
/** Index of rx-packets in {@link SharedNetStats.values}. */
export const STAT_RX_PACKETS = 0;
/** Index of rx-bytes. */
export const STAT_RX_BYTES = 1;
/** Index of rx-dropped. */
export const STAT_RX_DROPPED = 2;
/** Index of rx-stalls. */
export const STAT_RX_STALLS = 3;
/** Index of tx-packets. */
export const STAT_TX_PACKETS = 4;
/** Index of tx-bytes. */
export const STAT_TX_BYTES = 5;
/** Index of tx-dropped. */
export const STAT_TX_DROPPED = 6;
/** Byte offset of the link word (Int32: 1 up, 0 down) in a control buffer. */
export const NET_CONTROL_LINK = 64;
/** Size of a NIC control buffer: 8 float64 counters, then the link word. */
export const NET_CONTROL_BYTES = 72;

/**
 * A NIC's control buffer: counters at 0, link word (up) at {@link NET_CONTROL_LINK}.
 *
 * @returns a fresh buffer, link up
 * @example
 * ```ts
 * import { NET_CONTROL_LINK, netControlBuffer } from "./net_types.ts";
 * console.log(new Int32Array(netControlBuffer(), NET_CONTROL_LINK, 1)[0]); // 1
 * ```
 */
export function netControlBuffer(): SharedArrayBuffer {
  const b = new SharedArrayBuffer(NET_CONTROL_BYTES);
  new Int32Array(b, NET_CONTROL_LINK, 1)[0] = 1;
  return b;
}

/**
 * The link word of a control buffer (what `set_link` asked for last).
 *
 * @param buffer a control buffer
 * @returns 1 up, 0 down
 * @example
 * ```ts
 * import { linkWord, netControlBuffer } from "./net_types.ts";
 * console.log(linkWord(netControlBuffer())); // 1
 * ```
 */
export function linkWord(buffer: SharedArrayBuffer): number {
  return Atomics.load(new Int32Array(buffer, NET_CONTROL_LINK, 1), 0);
}

/**
 * {@link NetStats} kept in a (shared) Float64Array, so another thread can
 * read them while the loop that owns the device counts (no allocation).
 *
 * @example
 * ```ts
 * import { netControlBuffer, SharedNetStats } from "./net_types.ts";
 * const buf = netControlBuffer();
 * new SharedNetStats(buf).rxPackets++;
 * console.log(new SharedNetStats(buf).toJSON()["rx-packets"]); // 1
 * ```
 */
export class SharedNetStats implements NetStats {
  readonly #v: Float64Array;
  /**
   * The counters themselves, in {@link NET_STAT_NAMES} order (index with
   * the `STAT_*` constants): the data path counts here directly, an
   * element store per frame rather than a getter and a setter call.
   */
  readonly values: Float64Array;
  /** @param buffer a control buffer (default: a private one) */
  constructor(buffer: ArrayBufferLike = new ArrayBuffer(NET_CONTROL_BYTES)) {
    this.#v = new Float64Array(buffer, 0, NET_STAT_NAMES.length);
    this.values = this.#v;
  }
  /** Frames delivered to the guest. */
  get rxPackets(): number {
    return this.#v[0];
  }
  set rxPackets(n: number) {
    this.#v[0] = n;
  }
  /** Their bytes. */
  get rxBytes(): number {
    return this.#v[1];
  }
  set rxBytes(n: number) {
    this.#v[1] = n;
  }
  /** Frames read from the tap and dropped. */
  get rxDropped(): number {
    return this.#v[2];
  }
  set rxDropped(n: number) {
    this.#v[2] = n;
  }
  /** Times RX stopped for lack of guest buffers. */
  get rxStalls(): number {
    return this.#v[3];
  }
  set rxStalls(n: number) {
    this.#v[3] = n;
  }
  /** Guest frames that reached the tap. */
  get txPackets(): number {
    return this.#v[4];
  }
  set txPackets(n: number) {
    this.#v[4] = n;
  }
  /** Their bytes. */
  get txBytes(): number {
    return this.#v[5];
  }
  set txBytes(n: number) {
    this.#v[5] = n;
  }
  /** Guest frames dropped. */
  get txDropped(): number {
    return this.#v[6];
  }
  set txDropped(n: number) {
    this.#v[6] = n;
  }
  /** @returns the counters under their QMP names */
  toJSON(): Record<(typeof NET_STAT_NAMES)[number], number> {
    const out = {} as Record<(typeof NET_STAT_NAMES)[number], number>;
    NET_STAT_NAMES.forEach((name, i) => out[name] = this.#v[i]);
    return out;
  }
}
