/**
 * QEMU's `-device` for the devices denovmm has, as a QEMU command line
 * names them: `virtio-blk-pci` (attaching a `-drive if=none,id=ID`),
 * `virtio-net-pci` (a `-netdev`), `virtio-rng-pci`, `virtio-tablet-pci`,
 * and `isa-debug-exit` (always at 0xf4: accepted as QEMU test harnesses add it);
 * `iothread=NAME` refers to an `-object iothread,id=NAME`. Each becomes
 * denovmm's own `--disk` / `--nic` / `--rng` form; anything else is one
 * line naming what is supported.
 *
 * @module
 */
import { type Drive, qemuOptions } from "./qemu_options.ts";

/** The `-device` values, sorted by what they become. */
export interface RoutedDevices {
  /** `--disk` specs of the `virtio-blk-pci` devices, in order. */
  disks: string[];
  /** The `virtio-net-pci` values (for nicsFromNetdevs), iothread names made indices. */
  nicDevices: string[];
  /** `virtio-rng-pci` given: its byte rate from `max-bytes` and `period` (ms), if any. */
  rng?: { rateBytesPerSec?: number };
  /** `virtio-tablet-pci` given. */
  tablet: boolean;
}

/** The models `-device` takes here. */
const SUPPORTED =
  "virtio-blk-pci, virtio-net-pci, virtio-rng-pci, virtio-tablet-pci or isa-debug-exit";

function iothreadIndex(text: string, name: string, iothreads: ReadonlyMap<string, number>): number {
  const n = iothreads.get(name);
  if (n === undefined) {
    throw new Error(`-device '${text}': iothread=${name} names no -object iothread,id=${name}`);
  }
  return n;
}

function wholeNumber(text: string, key: string, value: string): number {
  if (!/^\d{1,12}$/.test(value) || Number(value) < 1) {
    throw new Error(`-device '${text}': ${key}=${value} is not a positive whole number`);
  }
  return Number(value);
}

/**
 * Sorts the `-device` values into disks, NICs, the RNG and the tablet.
 *
 * @param devices the `-device` values, in order
 * @param drives the `-drive if=none` drives, each to be attached exactly once
 * @param iothreads `-object iothread` indices by id
 * @returns what they become
 * @throws Error naming the device and its problem
 * @example
 * ```ts
 * import { routeDevices } from "./qemu_devices.ts";
 * const r = routeDevices(
 *   ["virtio-blk-pci,drive=d0,iothread=io0"],
 *   [{ disk: "a.img,ro", id: "d0", detached: true }],
 *   new Map([["io0", 0]]),
 * );
 * console.log(r.disks); // ["a.img,ro,iothread=0"]
 * ```
 */
export function routeDevices(
  devices: readonly string[],
  drives: readonly Drive[],
  iothreads: ReadonlyMap<string, number>,
): RoutedDevices {
  const byId = new Map<string, Drive>();
  for (const d of drives) {
    if (byId.has(d.id!)) throw new Error(`-drive id ${d.id} is used twice`);
    byId.set(d.id!, d);
  }
  const attached = new Set<string>();
  const out: RoutedDevices = { disks: [], nicDevices: [], tablet: false };
  for (const text of devices) {
    const pairs = qemuOptions(text, "driver");
    const driver = pairs[0][0] === "driver" ? pairs[0][1] : pairs[0][0];
    const opts = pairs.slice(1);
    const seen = new Set<string>();
    for (const [k] of opts) {
      if (seen.has(k)) throw new Error(`-device '${text}': '${k}' given twice`);
      seen.add(k);
    }
    switch (driver) {
      case "virtio-blk-pci": {
        let drive: Drive | undefined;
        const extra: string[] = [];
        for (const [k, v] of opts) {
          if (k === "drive") {
            drive = byId.get(v);
            if (!drive) {
              throw new Error(`-device '${text}': drive=${v} names no -drive if=none,id=${v}`);
            }
            if (attached.has(v)) throw new Error(`-device '${text}': drive ${v} is attached twice`);
            attached.add(v);
          } else if (k === "iothread") {
            extra.push(`iothread=${iothreadIndex(text, v, iothreads)}`);
          } else if (k === "num-queues") {
            extra.push(`num-queues=${wholeNumber(text, k, v)}`);
          } else if (k === "serial") {
            extra.push(`serial=${v}`);
          } else if (k !== "id") {
            throw new Error(`-device '${text}': unknown sub-option '${k}'`);
          }
        }
        if (!drive) throw new Error(`-device '${text}': needs drive=ID of a -drive if=none`);
        if (extra.some((e) => e.startsWith("serial=")) && drive.disk.includes(",serial=")) {
          throw new Error(`-device '${text}': serial is given on the -drive too`);
        }
        out.disks.push([drive.disk, ...extra].join(","));
        break;
      }
      case "virtio-net-pci": {
        // nicsFromNetdevs reads the rest; only an iothread's name becomes its index.
        const parts = text.split(",").map((p) =>
          p.startsWith("iothread=") && !/^iothread=\d+$/.test(p)
            ? `iothread=${iothreadIndex(text, p.slice(9), iothreads)}`
            : p
        );
        out.nicDevices.push(parts.join(","));
        break;
      }
      case "virtio-rng-pci": {
        if (out.rng) throw new Error(`-device '${text}': one virtio-rng-pci is supported`);
        const m = new Map(opts);
        for (const k of m.keys()) {
          if (k !== "id" && k !== "max-bytes" && k !== "period") {
            throw new Error(`-device '${text}': unknown sub-option '${k}'`);
          }
        }
        const maxBytes = m.get("max-bytes");
        if (maxBytes === undefined) {
          if (m.has("period")) throw new Error(`-device '${text}': period needs max-bytes`);
          out.rng = {};
        } else {
          // QEMU's default period is 1000 ms.
          const period = m.has("period") ? wholeNumber(text, "period", m.get("period")!) : 1000;
          const rate = Math.floor(wholeNumber(text, "max-bytes", maxBytes) * 1000 / period);
          if (rate < 1) throw new Error(`-device '${text}': under one byte per second`);
          out.rng = { rateBytesPerSec: rate };
        }
        break;
      }
      case "isa-debug-exit": {
        // Always there, at QEMU's usual place: accepted where it asks for that.
        for (const [k, v] of opts) {
          const n = Number(v);
          if (k === "iobase" ? n !== 0xf4 : k === "iosize" ? ![1, 2, 4].includes(n) : k !== "id") {
            throw new Error(
              `-device '${text}': ${k}=${v}: denovmm's isa-debug-exit is at iobase=0xf4 (iosize 1 to 4)`,
            );
          }
        }
        break;
      }
      case "virtio-tablet-pci":
        if (!opts.every(([k]) => k === "id")) {
          throw new Error(`-device '${text}': virtio-tablet-pci takes only id=`);
        }
        out.tablet = true;
        break;
      default:
        throw new Error(
          `-device '${text}': ${driver || "''"} is not a device here (use ${SUPPORTED})`,
        );
    }
  }
  for (const id of byId.keys()) {
    if (!attached.has(id)) {
      throw new Error(`-drive id ${id} (if=none) has no -device virtio-blk-pci,drive=${id}`);
    }
  }
  return out;
}
