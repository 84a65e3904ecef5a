/**
 * PCI configuration-space constants with their Linux names
 * (linux/pci_regs.h), checked against the header by a compiled probe.
 *
 * @module
 */

/** Vendor ID (u16). */
export const PCI_VENDOR_ID = 0x00;
/** Device ID (u16). */
export const PCI_DEVICE_ID = 0x02;
/** Command register (u16). */
export const PCI_COMMAND = 0x04;
/** Status register (u16). */
export const PCI_STATUS = 0x06;
/** Revision ID (u8). */
export const PCI_REVISION_ID = 0x08;
/** Class code: prog-if at 0x09, subclass 0x0a, class 0x0b. */
export const PCI_CLASS_PROG = 0x09;
/** Cache line size (u8). */
export const PCI_CACHE_LINE_SIZE = 0x0c;
/** Latency timer (u8). */
export const PCI_LATENCY_TIMER = 0x0d;
/** Header type (u8). */
export const PCI_HEADER_TYPE = 0x0e;
/** First base address register. */
export const PCI_BASE_ADDRESS_0 = 0x10;
/** Subsystem vendor ID (u16). */
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
/** Subsystem ID (u16). */
export const PCI_SUBSYSTEM_ID = 0x2e;
/** Expansion ROM base address. */
export const PCI_ROM_ADDRESS = 0x30;
/** Offset of the first capability (u8). */
export const PCI_CAPABILITY_LIST = 0x34;
/** Interrupt line (u8, written by firmware/OS). */
export const PCI_INTERRUPT_LINE = 0x3c;
/** Interrupt pin (u8: 1 = INTA). */
export const PCI_INTERRUPT_PIN = 0x3d;

/** Command: I/O space decode. */
export const PCI_COMMAND_IO = 0x1;
/** Command: memory space decode. */
export const PCI_COMMAND_MEMORY = 0x2;
/** Command: bus mastering (DMA). */
export const PCI_COMMAND_MASTER = 0x4;
/** Command: parity error response. */
export const PCI_COMMAND_PARITY = 0x40;
/** Command: SERR# enable. */
export const PCI_COMMAND_SERR = 0x100;
/** Command: INTx emulation disable. */
export const PCI_COMMAND_INTX_DISABLE = 0x400;
/** Status: INTx asserted. */
export const PCI_STATUS_INTERRUPT = 0x8;
/** Status: a capability list is present. */
export const PCI_STATUS_CAP_LIST = 0x10;

/** BAR bit 0: I/O space. */
export const PCI_BASE_ADDRESS_SPACE_IO = 0x1;
/** Memory BAR type: 64-bit. */
export const PCI_BASE_ADDRESS_MEM_TYPE_64 = 0x4;
/** Memory BAR: prefetchable. */
export const PCI_BASE_ADDRESS_MEM_PREFETCH = 0x8;

/** Header type 0: a normal device. */
export const PCI_HEADER_TYPE_NORMAL = 0;

/** Capability ID: vendor specific (virtio uses it). */
export const PCI_CAP_ID_VNDR = 0x09;
/** Capability ID: MSI-X. */
export const PCI_CAP_ID_MSIX = 0x11;
/** MSI-X message control offset in the capability. */
export const PCI_MSIX_FLAGS = 2;
/** MSI-X table offset/BIR offset in the capability. */
export const PCI_MSIX_TABLE = 4;
/** MSI-X PBA offset/BIR offset in the capability. */
export const PCI_MSIX_PBA = 8;
/** MSI-X control: table size - 1. */
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
/** MSI-X control: function mask. */
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
/** MSI-X control: enable. */
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
/** Bytes per MSI-X table entry. */
export const PCI_MSIX_ENTRY_SIZE = 16;
/** MSI-X vector control: masked. */
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 1;

/** Class code of a host bridge (class 06, subclass 00). */
export const PCI_CLASS_BRIDGE_HOST = 0x060000;
/** Config address register port (CONFIG_ADDRESS). */
export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
/** Config data port (CONFIG_DATA). */
export const PCI_CONFIG_DATA_PORT = 0xcfc;

/** Virtio's PCI vendor id (Red Hat / Qumranet). */
export const PCI_VENDOR_ID_REDHAT_QUMRANET = 0x1af4;
/** Modern virtio device ids are this plus the virtio device id. */
export const PCI_DEVICE_ID_VIRTIO_MODERN_BASE = 0x1040;
/** Intel's vendor id (for the host bridge). */
export const PCI_VENDOR_ID_INTEL = 0x8086;
/** Q35 host bridge (MCH) device id. */
export const PCI_DEVICE_ID_INTEL_Q35_MCH = 0x29c0;
