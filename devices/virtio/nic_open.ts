/**
 * `--nic` on the main thread: the option parsed and its tap opened before
 * the VM exists (so a missing tap or privilege is one line and exit 1).
 * The device model (net_backend.ts, net.ts, vhost_net.ts) loads only on the
 * loop that owns a NIC's queues: a VM without a NIC never loads it.
 *
 * @module
 */
import { libc } from "../../sys/libc.ts";
import { errno, ErrnoError } from "../../sys/errno.ts";
import { closeFd, cstring, O_RDWR } from "../../sys/fd.ts";
import { openTap, type Tap, TapError } from "../../sys/tun.ts";

/** The module whose `virtioNetBackend` builds a NIC's device model (net_backend.ts). */
export const NET_BACKEND_MODULE: string = new URL("./net_backend.ts", import.meta.url).href;

/** What `--nic` asked for. */
export interface NicOptions {
  /** tap interface name. */
  ifname: string;
  /** MAC address, `52:54:00:12:34:56` form. */
  mac?: string;
  /** Which iothread serves the queues (default: the main loop). */
  iothread?: number;
  /** Kernel data path (vhost-net). */
  vhost: boolean;
  /** Name for QMP (QEMU's `id=`/netdev id). */
  id?: string;
}

/**
 * Parses one `--nic` value (QEMU's `-nic tap,...` spelling).
 *
 * @param value e.g. `tap,ifname=tap0,mac=52:54:00:00:00:01,vhost=on`
 * @returns the options
 * @throws TypeError naming the bad part
 * @example
 * ```ts
 * import { parseNicOption } from "./nic_open.ts";
 * console.log(parseNicOption("tap,ifname=tap0,vhost=on").vhost); // true
 * ```
 */
export function parseNicOption(value: string): NicOptions {
  const parts = value.split(",");
  if (parts[0] !== "tap") throw new TypeError("only tap is supported (tap,ifname=NAME)");
  let ifname: string | undefined;
  const out: NicOptions = { ifname: "", vhost: false };
  for (const p of parts.slice(1)) {
    const eq = p.indexOf("=");
    const key = eq < 0 ? p : p.slice(0, eq);
    const val = eq < 0 ? "" : p.slice(eq + 1);
    switch (key) {
      case "ifname":
        if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(val)) {
          throw new TypeError(`invalid ifname '${val}' (1 to 15 letters, digits or _.:-)`);
        }
        ifname = val;
        break;
      case "mac":
        parseMac(val);
        out.mac = val.toLowerCase();
        break;
      case "iothread":
        if (!/^\d{1,3}$/.test(val)) throw new TypeError(`invalid iothread '${val}'`);
        out.iothread = Number(val);
        break;
      case "vhost":
        if (val !== "on" && val !== "off") throw new TypeError(`vhost must be on or off`);
        out.vhost = val === "on";
        break;
      case "id":
        if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(val)) {
          throw new TypeError(`invalid id '${val}' (a letter, then letters, digits or _.-)`);
        }
        out.id = val;
        break;
      case "model":
        if (val !== "virtio-net-pci" && val !== "virtio") {
          throw new TypeError(`model '${val}' is not supported (virtio-net-pci)`);
        }
        break;
      default:
        throw new TypeError(`unknown option '${key}'`);
    }
  }
  if (ifname === undefined) throw new TypeError("ifname=NAME is required");
  out.ifname = ifname;
  return out;
}

/**
 * Parses a MAC address; rejects multicast addresses (a NIC cannot own one).
 *
 * @param text `aa:bb:cc:dd:ee:ff`
 * @returns 6 bytes
 * @throws TypeError when malformed or multicast
 * @example
 * ```ts
 * import { parseMac } from "./nic_open.ts";
 * console.log(parseMac("52:54:00:12:34:56")[5]); // 86
 * ```
 */
export function parseMac(text: string): Uint8Array {
  if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(text)) {
    throw new TypeError(`invalid mac '${text}' (use 52:54:00:12:34:56)`);
  }
  const b = Uint8Array.from(text.split(":").map((h) => parseInt(h, 16)));
  if (b[0] & 1) throw new TypeError(`mac '${text}' is a multicast address`);
  return b;
}

/**
 * QEMU's default MAC for the n-th NIC: 52:54:00:12:34:56 + n.
 *
 * @param index NIC number from 0
 * @returns the address text
 * @example
 * ```ts
 * import { defaultMac } from "./nic_open.ts";
 * console.log(defaultMac(1)); // 52:54:00:12:34:57
 * ```
 */
export function defaultMac(index: number): string {
  const last = (0x56 + index) & 0xff;
  const fifth = (0x34 + ((0x56 + index) >> 8)) & 0xff;
  return `52:54:00:12:${fifth.toString(16).padStart(2, "0")}:${last.toString(16).padStart(2, "0")}`;
}

/**
 * Turns QEMU's `--netdev tap,id=ID,ifname=NAME[,vhost=on]` plus
 * `--device virtio-net-pci,netdev=ID[,mac=..]` pairs into `--nic` strings.
 *
 * @param netdevs `--netdev` values
 * @param devices `--device` values
 * @returns equivalent `--nic` values, in device order
 * @throws TypeError naming the bad value
 * @example
 * ```ts
 * import { nicsFromNetdevs } from "./nic_open.ts";
 * console.log(nicsFromNetdevs(["tap,id=n0,ifname=tap0"], ["virtio-net-pci,netdev=n0"]));
 * // ["tap,ifname=tap0,id=n0"]
 * ```
 */
export function nicsFromNetdevs(netdevs: readonly string[], devices: readonly string[]): string[] {
  const byId = new Map<string, string[]>();
  for (const n of netdevs) {
    const parts = n.split(",");
    if (parts[0] !== "tap") throw new TypeError(`--netdev '${n}': only tap is supported`);
    const id = parts.find((p) => p.startsWith("id="))?.slice(3);
    if (!id) throw new TypeError(`--netdev '${n}': id=ID is required`);
    if (byId.has(id)) throw new TypeError(`--netdev '${n}': id ${id} is used twice`);
    byId.set(id, ["tap", ...parts.slice(1).filter((p) => !p.startsWith("id=")), `id=${id}`]);
  }
  const used = new Set<string>();
  const out = devices.map((d) => {
    const parts = d.split(",");
    if (parts[0] !== "virtio-net-pci") {
      throw new TypeError(`--device '${d}': only virtio-net-pci is supported`);
    }
    const id = parts.find((p) => p.startsWith("netdev="))?.slice(7);
    const nd = id === undefined ? undefined : byId.get(id);
    if (!nd) throw new TypeError(`--device '${d}': netdev=ID must name a --netdev`);
    if (used.has(id!)) throw new TypeError(`--device '${d}': netdev ${id} is used twice`);
    used.add(id!);
    const rest = parts.slice(1).filter((p) => !p.startsWith("netdev="));
    return [...nd, ...rest].join(",");
  });
  for (const id of byId.keys()) {
    if (!used.has(id)) throw new TypeError(`--netdev id ${id} has no --device virtio-net-pci`);
  }
  for (const nic of out) parseNicOption(nic);
  return out;
}

/** A `--nic` with its tap open. */
export interface OpenedNic {
  /** What the user asked for (mac filled in). */
  options: NicOptions & { mac: string };
  /** The open tap. */
  tap: Tap;
}

/**
 * Opens every `--nic` tap before the VM exists; on failure nothing stays
 * open.
 *
 * @param values `--nic` strings, or NIC configs (ifname, mac, iothread, vhost), in order
 * @returns the opened NICs
 * @throws TapError with one line naming the NIC and the problem
 * @example
 * ```ts ignore
 * const nics = openNics(["tap,ifname=tap0"]);
 * ```
 */
export function openNics(
  values: readonly (string | {
    ifname: string;
    mac?: string;
    iothread?: number;
    vhost?: boolean;
    id?: string;
  })[],
): OpenedNic[] {
  const out: OpenedNic[] = [];
  try {
    values.forEach((value, i) => {
      let o: NicOptions;
      // A config is checked as the --nic it stands for (and named so in errors).
      const text = typeof value === "string"
        ? value
        : `tap,ifname=${value.ifname}${value.id ? `,id=${value.id}` : ""}`;
      try {
        o = parseNicOption(text);
        if (typeof value !== "string") {
          if (value.mac !== undefined) o.mac = (parseMac(value.mac), value.mac.toLowerCase());
          o.iothread = value.iothread;
          o.vhost = value.vhost ?? false;
        }
      } catch (e) {
        throw new TapError(`Invalid --nic '${text}': ${(e as Error).message}`);
      }
      if (o.id !== undefined && out.some((n) => n.options.id === o.id)) {
        throw new TapError(`Invalid --nic '${text}': id ${o.id} is used twice`);
      }
      if (out.some((n) => n.options.ifname === o.ifname)) {
        throw new TapError(`Invalid --nic '${text}': tap ${o.ifname} is used twice`);
      }
      if (o.vhost) {
        const why = vhostNetAvailable();
        if (why) throw new TapError(`Cannot use vhost=on for tap ${o.ifname}: ${why}`);
      }
      const tap = openTap(o.ifname);
      out.push({ options: { ...o, mac: o.mac ?? defaultMac(i) }, tap });
    });
  } catch (e) {
    for (const n of out) n.tap.close();
    throw e;
  }
  return out;
}

/** The vhost-net character device. */
export const VHOST_NET_PATH = "/dev/vhost-net";

/**
 * Why vhost-net cannot be used here, or null when /dev/vhost-net opens.
 *
 * @returns the reason, or null
 * @example
 * ```ts
 * import { vhostNetAvailable } from "./nic_open.ts";
 * console.log(typeof vhostNetAvailable()); // "string" or "object"
 * ```
 */
export function vhostNetAvailable(): string | null {
  const fd = libc.open(cstring(VHOST_NET_PATH), O_RDWR | 0o2000000, 0);
  if (fd < 0) {
    return `${VHOST_NET_PATH}: ${new ErrnoError("open", errno()).message.replace(/^open: /, "")}` +
      " (load vhost_net, or use vhost=off)";
  }
  closeFd(fd);
  return null;
}
