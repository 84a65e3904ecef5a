/**
 * virtio-net numbers with their Linux UAPI names (linux/virtio_net.h),
 * checked against the header by `net_test.ts`.
 *
 * @module
 */

/** Virtio device id of a network card. */
export const VIRTIO_ID_NET = 1;

/** Feature: the device takes packets with a partial checksum. */
export const VIRTIO_NET_F_CSUM = 0;
/** Feature: the driver takes packets with a partial checksum. */
export const VIRTIO_NET_F_GUEST_CSUM = 1;
/** Feature: the device has a MAC address in its config. */
export const VIRTIO_NET_F_MAC = 5;
/** Feature: the driver takes TSOv4. */
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
/** Feature: the driver takes TSOv6. */
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
/** Feature: the driver takes TSO with ECN. */
export const VIRTIO_NET_F_GUEST_ECN = 9;
/** Feature: the driver takes UFO. */
export const VIRTIO_NET_F_GUEST_UFO = 10;
/** Feature: the device takes TSOv4. */
export const VIRTIO_NET_F_HOST_TSO4 = 11;
/** Feature: the device takes TSOv6. */
export const VIRTIO_NET_F_HOST_TSO6 = 12;
/** Feature: the device takes TSO with ECN. */
export const VIRTIO_NET_F_HOST_ECN = 13;
/** Feature: the device takes UFO. */
export const VIRTIO_NET_F_HOST_UFO = 14;
/** Feature: the driver can merge receive buffers. */
export const VIRTIO_NET_F_MRG_RXBUF = 15;
/** Feature: the config status field is valid. */
export const VIRTIO_NET_F_STATUS = 16;

/** Config status bit: the link is up. */
export const VIRTIO_NET_S_LINK_UP = 1;

/** Header flag: the packet needs a checksum at csum_start + csum_offset. */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
/** Header flag: the checksum was verified. */
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
/** gso_type: not a GSO frame. */
export const VIRTIO_NET_HDR_GSO_NONE = 0;
/** gso_type: TCPv4 segmentation. */
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
/** gso_type: UDP fragmentation. */
export const VIRTIO_NET_HDR_GSO_UDP = 3;
/** gso_type: TCPv6 segmentation. */
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
/** gso_type flag: ECN. */
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/** sizeof(struct virtio_net_hdr_v1). */
export const VIRTIO_NET_HDR_SIZE = 12;
/** offsetof(struct virtio_net_hdr_v1, flags). */
export const VIRTIO_NET_HDR_FLAGS = 0;
/** offsetof(struct virtio_net_hdr_v1, gso_type). */
export const VIRTIO_NET_HDR_GSO_TYPE = 1;
/** offsetof(struct virtio_net_hdr_v1, num_buffers). */
export const VIRTIO_NET_HDR_NUM_BUFFERS = 10;

/** offsetof(struct virtio_net_config, mac). */
export const VIRTIO_NET_CFG_MAC = 0;
/** offsetof(struct virtio_net_config, status). */
export const VIRTIO_NET_CFG_STATUS = 6;
/** offsetof(struct virtio_net_config, max_virtqueue_pairs). */
export const VIRTIO_NET_CFG_MAX_PAIRS = 8;
/** Config bytes this device shows (mac, status, max_virtqueue_pairs, mtu). */
export const VIRTIO_NET_CFG_SIZE = 12;

/** Largest frame after the header: 64 KiB of GSO payload plus an Ethernet/VLAN header. */
export const VIRTIO_NET_MAX_FRAME = 65550;

/** The names above, for the header probe (C expression -> our value). */
export const NET_ABI: Readonly<Record<string, number>> = {
  VIRTIO_ID_NET,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_GUEST_ECN,
  VIRTIO_NET_F_GUEST_UFO,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_HOST_ECN,
  VIRTIO_NET_F_HOST_UFO,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_S_LINK_UP,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_ECN,
  "sizeof(struct virtio_net_hdr_v1)": VIRTIO_NET_HDR_SIZE,
  "offsetof(struct virtio_net_hdr_v1, flags)": VIRTIO_NET_HDR_FLAGS,
  "offsetof(struct virtio_net_hdr_v1, gso_type)": VIRTIO_NET_HDR_GSO_TYPE,
  "offsetof(struct virtio_net_hdr_v1, num_buffers)": VIRTIO_NET_HDR_NUM_BUFFERS,
  "offsetof(struct virtio_net_config, mac)": VIRTIO_NET_CFG_MAC,
  "offsetof(struct virtio_net_config, status)": VIRTIO_NET_CFG_STATUS,
  "offsetof(struct virtio_net_config, max_virtqueue_pairs)": VIRTIO_NET_CFG_MAX_PAIRS,
  "offsetof(struct virtio_net_config, mtu) + 2": VIRTIO_NET_CFG_SIZE,
};
