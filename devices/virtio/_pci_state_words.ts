/**
 * Word offsets in a virtio-pci function's shared transport state (an
 * Int32Array over the SharedArrayBuffer every thread's VirtioPciDevice views):
 * the common registers, then {@link Q_STRIDE} words per queue.
 *
 * @module
 */
export const W_STATUS = 0;
export const W_DFSELECT = 1;
export const W_GFSELECT = 2;
export const W_GF_LO = 3;
export const W_GF_HI = 4;
export const W_MSIX_CONFIG = 5;
export const W_CONFIG_GEN = 6;
export const W_QSELECT = 7;
export const W_ISR = 8;
export const W_RESET_PENDING = 9;
export const W_QUEUES = 16;
export const Q_STRIDE = 9;
export const Q_SIZE = 0;
export const Q_MSIX = 1;
export const Q_ENABLE = 2;
export const Q_DESC = 3;
export const Q_AVAIL = 5;
export const Q_USED = 7;
