/**
 * Virtio constants with their Linux UAPI names (linux/virtio_*.h), checked
 * against the headers by a compiled probe.
 *
 * @module
 */

/** Device status: the guest noticed the device. */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
/** Device status: the guest has a driver for it. */
export const VIRTIO_CONFIG_S_DRIVER = 2;
/** Device status: the driver is ready, queues may be used. */
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
/** Device status: feature negotiation is complete. */
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
/** Device status: the device hit an error and needs a reset. */
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
/** Device status: the driver gave up on the device. */
export const VIRTIO_CONFIG_S_FAILED = 0x80;

/** Feature bit: the virtio 1.x interface (required by this transport). */
export const VIRTIO_F_VERSION_1 = 32;
/** Feature bit: indirect descriptor tables. */
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
/** Feature bit: used_event / avail_event interrupt and notification suppression. */
export const VIRTIO_RING_F_EVENT_IDX = 29;

/** Descriptor flag: the chain continues at `next`. */
export const VRING_DESC_F_NEXT = 1;
/** Descriptor flag: the buffer is device-writable. */
export const VRING_DESC_F_WRITE = 2;
/** Descriptor flag: the buffer is an indirect descriptor table. */
export const VRING_DESC_F_INDIRECT = 4;
/** Used ring flag: the device does not want notifications. */
export const VRING_USED_F_NO_NOTIFY = 1;
/** Avail ring flag: the driver does not want interrupts. */
export const VRING_AVAIL_F_NO_INTERRUPT = 1;

/** Virtio device id of a block device. */
export const VIRTIO_ID_BLOCK = 2;

/** ISR bit: a used buffer was added to some queue. */
export const VIRTIO_PCI_ISR_QUEUE = 1;
/** ISR bit: the device configuration changed. */
export const VIRTIO_PCI_ISR_CONFIG = 2;
/** MSI-X vector value meaning "no vector". */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

/** virtio-pci capability types (cfg_type). */
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
/** Notification area capability. */
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
/** ISR status capability. */
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
/** Device-specific configuration capability. */
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;

/** Offsets in struct virtio_pci_common_cfg. */
export const VIRTIO_PCI_COMMON_DFSELECT = 0;
/** device_feature. */
export const VIRTIO_PCI_COMMON_DF = 4;
/** driver_feature_select. */
export const VIRTIO_PCI_COMMON_GFSELECT = 8;
/** driver_feature. */
export const VIRTIO_PCI_COMMON_GF = 12;
/** msix_config. */
export const VIRTIO_PCI_COMMON_MSIX = 16;
/** num_queues. */
export const VIRTIO_PCI_COMMON_NUMQ = 18;
/** device_status. */
export const VIRTIO_PCI_COMMON_STATUS = 20;
/** config_generation. */
export const VIRTIO_PCI_COMMON_CFGGENERATION = 21;
/** queue_select. */
export const VIRTIO_PCI_COMMON_Q_SELECT = 22;
/** queue_size. */
export const VIRTIO_PCI_COMMON_Q_SIZE = 24;
/** queue_msix_vector. */
export const VIRTIO_PCI_COMMON_Q_MSIX = 26;
/** queue_enable. */
export const VIRTIO_PCI_COMMON_Q_ENABLE = 28;
/** queue_notify_off. */
export const VIRTIO_PCI_COMMON_Q_NOFF = 30;
/** queue_desc (lo, hi at +4). */
export const VIRTIO_PCI_COMMON_Q_DESCLO = 32;
/** queue_driver / avail (lo, hi at +4). */
export const VIRTIO_PCI_COMMON_Q_AVAILLO = 40;
/** queue_device / used (lo, hi at +4). */
export const VIRTIO_PCI_COMMON_Q_USEDLO = 48;
/** sizeof(struct virtio_pci_common_cfg). */
export const VIRTIO_PCI_COMMON_CFG_SIZE = 56;

/** virtio-blk feature bits (linux/virtio_blk.h). */
export const VIRTIO_BLK_F_SIZE_MAX = 1;
/** seg_max is valid. */
export const VIRTIO_BLK_F_SEG_MAX = 2;
/** The disk is read-only. */
export const VIRTIO_BLK_F_RO = 5;
/** blk_size is valid. */
export const VIRTIO_BLK_F_BLK_SIZE = 6;
/** Cache flush command. */
export const VIRTIO_BLK_F_FLUSH = 9;
/** num_queues is valid: the device has that many request queues. */
export const VIRTIO_BLK_F_MQ = 12;
/** Discard command. */
export const VIRTIO_BLK_F_DISCARD = 13;
/** Write-zeroes command. */
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

/** virtio-blk request types. */
export const VIRTIO_BLK_T_IN = 0;
/** Write. */
export const VIRTIO_BLK_T_OUT = 1;
/** Flush. */
export const VIRTIO_BLK_T_FLUSH = 4;
/** Get the device id string. */
export const VIRTIO_BLK_T_GET_ID = 8;
/** Discard. */
export const VIRTIO_BLK_T_DISCARD = 11;
/** Write zeroes. */
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
/** Length of the GET_ID answer. */
export const VIRTIO_BLK_ID_BYTES = 20;

/** virtio-blk status: success. */
export const VIRTIO_BLK_S_OK = 0;
/** virtio-blk status: I/O error. */
export const VIRTIO_BLK_S_IOERR = 1;
/** virtio-blk status: unsupported request. */
export const VIRTIO_BLK_S_UNSUPP = 2;
/** Write-zeroes flag: the device may unmap. */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** Offsets in struct virtio_blk_config. */
export const VIRTIO_BLK_CFG_CAPACITY = 0;
/** size_max. */
export const VIRTIO_BLK_CFG_SIZE_MAX = 8;
/** seg_max. */
export const VIRTIO_BLK_CFG_SEG_MAX = 12;
/** blk_size. */
export const VIRTIO_BLK_CFG_BLK_SIZE = 20;
/** num_queues. */
export const VIRTIO_BLK_CFG_NUM_QUEUES = 34;
/** max_discard_sectors. */
export const VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS = 36;
/** max_discard_seg. */
export const VIRTIO_BLK_CFG_MAX_DISCARD_SEG = 40;
/** discard_sector_alignment. */
export const VIRTIO_BLK_CFG_DISCARD_ALIGN = 44;
/** max_write_zeroes_sectors. */
export const VIRTIO_BLK_CFG_MAX_WZ_SECTORS = 48;
/** max_write_zeroes_seg. */
export const VIRTIO_BLK_CFG_MAX_WZ_SEG = 52;
/** write_zeroes_may_unmap. */
export const VIRTIO_BLK_CFG_WZ_MAY_UNMAP = 56;
/** sizeof(struct virtio_blk_config). */
export const VIRTIO_BLK_CFG_SIZE = 72;

/**
 * The bit for a feature number, as a bigint mask.
 *
 * @param bit feature number (0..63)
 * @returns 1n << bit
 * @example
 * ```ts
 * import { featureBit, VIRTIO_F_VERSION_1 } from "./constants.ts";
 * console.log(featureBit(VIRTIO_F_VERSION_1).toString(16)); // 100000000
 * ```
 */
export function featureBit(bit: number): bigint {
  return 1n << BigInt(bit);
}
