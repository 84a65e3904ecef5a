/**
 * virtio-input's configuration (virtio spec 5.8.4) and the Linux event
 * codes it speaks (`linux/input-event-codes.h`): the driver writes
 * `select`/`subsel` and reads `size` and the union (name, ids, event bits,
 * axis ranges). The pages here describe an absolute tablet as QEMU's
 * `virtio-tablet-pci` does: X/Y over 0..32767, three buttons plus side
 * and extra, and the wheels.
 *
 * @module
 */
import type { VirtioConfigSelect } from "./config_select.ts";

/** Virtio device id of an input device. */
export const VIRTIO_ID_INPUT = 18;
/** Bytes of `struct virtio_input_config`: select, subsel, size, 5 reserved, 128 of union. */
export const VIRTIO_INPUT_CONFIG_SIZE = 136;

/** `select` values. */
export const VIRTIO_INPUT_CFG_UNSET = 0x00;
/** The device name (a string). */
export const VIRTIO_INPUT_CFG_ID_NAME = 0x01;
/** The serial (a string). */
export const VIRTIO_INPUT_CFG_ID_SERIAL = 0x02;
/** Bus type, vendor, product and version (4 × le16). */
export const VIRTIO_INPUT_CFG_ID_DEVIDS = 0x03;
/** Input properties bitmap. */
export const VIRTIO_INPUT_CFG_PROP_BITS = 0x10;
/** Event codes bitmap of event type `subsel`. */
export const VIRTIO_INPUT_CFG_EV_BITS = 0x11;
/** Range of absolute axis `subsel` (min, max, fuzz, flat, res as le32). */
export const VIRTIO_INPUT_CFG_ABS_INFO = 0x12;

/** Event types. */
export const EV_SYN = 0x00;
/** Keys and buttons. */
export const EV_KEY = 0x01;
/** Relative axes. */
export const EV_REL = 0x02;
/** Absolute axes. */
export const EV_ABS = 0x03;
/** End of one report. */
export const SYN_REPORT = 0;
/** Buttons. */
export const BTN_LEFT = 0x110;
/** Right button. */
export const BTN_RIGHT = 0x111;
/** Middle button. */
export const BTN_MIDDLE = 0x112;
/** Side (back) button. */
export const BTN_SIDE = 0x113;
/** Extra (forward) button. */
export const BTN_EXTRA = 0x114;
/** Horizontal wheel. */
export const REL_HWHEEL = 0x06;
/** Vertical wheel. */
export const REL_WHEEL = 0x08;
/** Absolute X. */
export const ABS_X = 0x00;
/** Absolute Y. */
export const ABS_Y = 0x01;
/** The largest axis value (QEMU's INPUT_EVENT_ABS_MAX). */
export const TABLET_ABS_MAX = 0x7fff;
/** The tablet's name, as QEMU shows it. */
export const TABLET_NAME = "QEMU Virtio Tablet";

/** BUS_VIRTUAL, and QEMU's vendor/product for its tablet. */
const TABLET_DEVIDS = [0x06, 0x0627, 0x0003, 0x0001];
/** Where `size` sits in a page (pages start after select and subsel). */
const PAGE_SIZE_BYTE = 0;
/** Where the union starts in a page. */
const PAGE_UNION = 6;

function page(bytes: Uint8Array): Uint8Array {
  const p = new Uint8Array(PAGE_UNION + bytes.length);
  p[PAGE_SIZE_BYTE] = bytes.length;
  p.set(bytes, PAGE_UNION);
  return p;
}

function bitmap(bits: readonly number[]): Uint8Array {
  const b = new Uint8Array((Math.max(...bits) >> 3) + 1);
  for (const bit of bits) b[bit >> 3] |= 1 << (bit & 7);
  return b;
}

function le32s(values: readonly number[]): Uint8Array {
  const b = new Uint8Array(4 * values.length);
  const v = new DataView(b.buffer);
  values.forEach((x, i) => v.setUint32(4 * i, x, true));
  return b;
}

/**
 * The config pages of an absolute tablet.
 *
 * @param options an optional serial string
 * @returns the selector and pages for the transport
 * @example
 * ```ts
 * import { tabletConfigSelect, VIRTIO_INPUT_CFG_ID_NAME } from "./input_config.ts";
 * const name = tabletConfigSelect().pages.get(VIRTIO_INPUT_CFG_ID_NAME)!;
 * console.log(name[0]); // 18: "QEMU Virtio Tablet".length
 * ```
 */
export function tabletConfigSelect(options: { serial?: string } = {}): VirtioConfigSelect {
  const key = (select: number, subsel = 0) => select | (subsel << 8);
  const enc = new TextEncoder();
  const ids = new Uint8Array(8);
  TABLET_DEVIDS.forEach((x, i) => new DataView(ids.buffer).setUint16(2 * i, x, true));
  const pages = new Map<number, Uint8Array>([
    [key(VIRTIO_INPUT_CFG_ID_NAME), page(enc.encode(TABLET_NAME))],
    [key(VIRTIO_INPUT_CFG_ID_DEVIDS), page(ids)],
    [
      key(VIRTIO_INPUT_CFG_EV_BITS, EV_KEY),
      page(bitmap([BTN_LEFT, BTN_RIGHT, BTN_MIDDLE, BTN_SIDE, BTN_EXTRA])),
    ],
    [key(VIRTIO_INPUT_CFG_EV_BITS, EV_REL), page(bitmap([REL_HWHEEL, REL_WHEEL]))],
    [key(VIRTIO_INPUT_CFG_EV_BITS, EV_ABS), page(bitmap([ABS_X, ABS_Y]))],
    [key(VIRTIO_INPUT_CFG_ABS_INFO, ABS_X), page(le32s([0, TABLET_ABS_MAX, 0, 0, 0]))],
    [key(VIRTIO_INPUT_CFG_ABS_INFO, ABS_Y), page(le32s([0, TABLET_ABS_MAX, 0, 0, 0]))],
  ]);
  const serial = options.serial ?? "";
  if (serial !== "") {
    pages.set(key(VIRTIO_INPUT_CFG_ID_SERIAL), page(enc.encode(serial).subarray(0, 128)));
  }
  return { selectorBytes: 2, pages };
}
