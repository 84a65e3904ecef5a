/**
 * What virtio-net offers and how negotiated features map to the tap:
 * shared by the TypeScript data path (net.ts) and vhost-net.
 *
 * @module
 */
import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO } from "../../sys/tun.ts";
import { featureBit, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from "./constants.ts";
import {
  VIRTIO_NET_CFG_MAC,
  VIRTIO_NET_CFG_MAX_PAIRS,
  VIRTIO_NET_CFG_STATUS,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_ECN,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_GUEST_UFO,
  VIRTIO_NET_F_HOST_ECN,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_HOST_UFO,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_S_LINK_UP,
} from "./net_constants.ts";

/**
 * The features a tap-backed virtio-net offers: checksum and segmentation
 * offloads both ways, MAC, link status, mergeable RX buffers, and the ring
 * features.
 *
 * @param ufo whether the tap takes UDP fragmentation offload
 * @returns the feature mask
 * @example
 * ```ts
 * import { netDeviceFeatures } from "./net_features.ts";
 * console.log((netDeviceFeatures(false) >> 15n) & 1n); // 1n (MRG_RXBUF)
 * ```
 */
export function netDeviceFeatures(ufo: boolean): bigint {
  let f = 0n;
  for (
    const bit of [
      VIRTIO_NET_F_CSUM,
      VIRTIO_NET_F_GUEST_CSUM,
      VIRTIO_NET_F_MAC,
      VIRTIO_NET_F_GUEST_TSO4,
      VIRTIO_NET_F_GUEST_TSO6,
      VIRTIO_NET_F_GUEST_ECN,
      VIRTIO_NET_F_HOST_TSO4,
      VIRTIO_NET_F_HOST_TSO6,
      VIRTIO_NET_F_HOST_ECN,
      VIRTIO_NET_F_MRG_RXBUF,
      VIRTIO_NET_F_STATUS,
      VIRTIO_RING_F_EVENT_IDX,
      VIRTIO_RING_F_INDIRECT_DESC,
    ]
  ) f |= featureBit(bit);
  if (ufo) f |= featureBit(VIRTIO_NET_F_GUEST_UFO) | featureBit(VIRTIO_NET_F_HOST_UFO);
  return f;
}

/**
 * Writes virtio_net_config: MAC, status, one queue pair.
 *
 * @param config the config bytes
 * @param mac 6 bytes
 * @param linkUp the link status
 * @example
 * ```ts
 * import { initNetConfig } from "./net_features.ts";
 * const c = new Uint8Array(12);
 * initNetConfig(c, new Uint8Array([2, 0, 0, 0, 0, 1]), true);
 * console.log(c[6]); // 1
 * ```
 */
export function initNetConfig(config: Uint8Array, mac: Uint8Array, linkUp: boolean): void {
  config.set(mac, VIRTIO_NET_CFG_MAC);
  const v = new DataView(config.buffer, config.byteOffset, config.byteLength);
  v.setUint16(VIRTIO_NET_CFG_STATUS, linkUp ? VIRTIO_NET_S_LINK_UP : 0, true);
  v.setUint16(VIRTIO_NET_CFG_MAX_PAIRS, 1, true);
}

/**
 * The tap offloads (TUN_F_*) matching the GUEST_* features a driver accepted.
 *
 * @param features negotiated virtio features
 * @returns flags for TUNSETOFFLOAD
 * @example
 * ```ts
 * import { offloadsFor } from "./net_features.ts";
 * console.log(offloadsFor((1n << 1n) | (1n << 7n))); // 3 (CSUM | TSO4)
 * ```
 */
export function offloadsFor(features: bigint): number {
  const has = (bit: number) => (features & featureBit(bit)) !== 0n;
  if (!has(VIRTIO_NET_F_GUEST_CSUM)) return 0;
  let f = TUN_F_CSUM;
  if (has(VIRTIO_NET_F_GUEST_TSO4)) f |= TUN_F_TSO4;
  if (has(VIRTIO_NET_F_GUEST_TSO6)) f |= TUN_F_TSO6;
  if (has(VIRTIO_NET_F_GUEST_ECN)) f |= TUN_F_TSO_ECN;
  if (has(VIRTIO_NET_F_GUEST_UFO)) f |= TUN_F_UFO;
  return f;
}

/**
 * The TX header offloads the accepted features allow, as a mask for
 * {@link txHeaderAllowed}: bit n for gso_type n, bit 7 for ECN, bit 8 for
 * NEEDS_CSUM.
 *
 * @param features the accepted features
 * @returns the mask
 * @example
 * ```ts
 * import { txOffloadMask } from "./net_features.ts";
 * console.log(txOffloadMask(1n)); // 256 (CSUM only)
 * ```
 */
export function txOffloadMask(features: bigint): number {
  const has = (bit: number) => (features & featureBit(bit)) !== 0n;
  return (has(VIRTIO_NET_F_HOST_TSO4) ? 1 << VIRTIO_NET_HDR_GSO_TCPV4 : 0) |
    (has(VIRTIO_NET_F_HOST_TSO6) ? 1 << VIRTIO_NET_HDR_GSO_TCPV6 : 0) |
    (has(VIRTIO_NET_F_HOST_UFO) ? 1 << VIRTIO_NET_HDR_GSO_UDP : 0) |
    (has(VIRTIO_NET_F_HOST_ECN) ? 1 << 7 : 0) | (has(VIRTIO_NET_F_CSUM) ? 1 << 8 : 0);
}

/**
 * Whether a TX header's flags and gso_type stay within what the driver
 * negotiated.
 *
 * @param flags the header's flags byte
 * @param gsoType its gso_type byte
 * @param mask from {@link txOffloadMask}
 * @returns true when allowed
 * @example
 * ```ts
 * import { txHeaderAllowed } from "./net_features.ts";
 * console.log(txHeaderAllowed(1, 0, 0)); // false: NEEDS_CSUM without CSUM
 * ```
 */
export function txHeaderAllowed(flags: number, gsoType: number, mask: number): boolean {
  const gso = gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
  return !(
    (gso !== VIRTIO_NET_HDR_GSO_NONE && (gso > 8 || !(mask & (1 << gso)))) ||
    ((gsoType & VIRTIO_NET_HDR_GSO_ECN) && !(mask & (1 << 7))) ||
    ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !(mask & (1 << 8)))
  );
}
