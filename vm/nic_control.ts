/**
 * The management side of the VM's NICs, for QMP on the main thread: the
 * list (`x-query-net`), link changes (`set_link`) and counters (statistics),
 * over each NIC's shared control buffer; the device applies a link change
 * on its own loop when the control eventfd fires.
 *
 * @module
 */
import { eventFdWrite } from "../sys/fd.ts";
import { NET_CONTROL_LINK, NET_STAT_NAMES, SharedNetStats } from "../devices/virtio/net_types.ts";
import type { ResolvedNetDevices } from "./net_devices.ts";

/** One NIC as management sees it. */
export interface NicInfo {
  /** QMP name: the `id=` given, else `netN`. */
  name: string;
  /** The tap. */
  ifname: string;
  /** MAC address. */
  mac: string;
  /** Kernel data path (its frames are not counted here). */
  vhost: boolean;
  /** Link as last set (up unless `set_link` took it down). */
  up: boolean;
  /**
   * Counters under their QMP names: rx-packets, rx-bytes, rx-dropped,
   * rx-stalls, tx-packets, tx-bytes, tx-dropped.
   */
  stats: Record<string, number>;
}

/**
 * The reason `set_link` failed, with QEMU's error class.
 *
 * @example
 * ```ts
 * import { NicControlError } from "./nic_control.ts";
 * console.log(new NicControlError("DeviceNotFound", "Device 'x' not found").errorClass);
 * ```
 */
export class NicControlError extends Error {
  /** QEMU's error class. */
  readonly errorClass: string;
  /**
   * Names why a link change was refused.
   *
   * @param errorClass QEMU's error class
   * @param message one line
   */
  constructor(errorClass: string, message: string) {
    super(message);
    this.name = "NicControlError";
    this.errorClass = errorClass;
  }
}

function nameOf(r: ResolvedNetDevices, i: number): string {
  return r.nics[i].options.id ?? `net${i}`;
}

/**
 * The VM's NICs with their link state and counters.
 *
 * @param r the resolved network devices
 * @returns one entry per NIC
 * @example
 * ```ts ignore
 * console.log(nicInfo(vm.net).map((n) => `${n.name} ${n.stats["rx-packets"]}`));
 * ```
 */
export function nicInfo(r: ResolvedNetDevices): NicInfo[] {
  return r.nics.map((n, i) => {
    const buf = r.controls[i].buffer;
    return {
      name: nameOf(r, i),
      ifname: n.options.ifname,
      mac: n.options.mac,
      vhost: n.options.vhost,
      up: Atomics.load(new Int32Array(buf, NET_CONTROL_LINK, 1), 0) !== 0,
      stats: new SharedNetStats(buf).toJSON(),
    };
  });
}

/**
 * QMP `set_link`: sets a NIC's link and tells its loop, which updates the
 * config status and raises a config interrupt.
 *
 * @param r the resolved network devices
 * @param name the NIC's QMP name (`id=`, `netN`) or its tap name
 * @param up the link state
 * @throws NicControlError when no NIC has that name, or it uses vhost
 * @example
 * ```ts ignore
 * setNicLink(vm.net, "net0", false);
 * ```
 */
export function setNicLink(r: ResolvedNetDevices, name: string, up: boolean): void {
  const i = r.nics.findIndex((n, i) => nameOf(r, i) === name || n.options.ifname === name);
  if (i < 0) throw new NicControlError("DeviceNotFound", `Device '${name}' not found`);
  if (r.nics[i].options.vhost) {
    throw new NicControlError(
      "GenericError",
      `set_link is not supported with vhost=on ('${name}')`,
    );
  }
  const c = r.controls[i];
  Atomics.store(new Int32Array(c.buffer, NET_CONTROL_LINK, 1), 0, up ? 1 : 0);
  eventFdWrite(c.linkFd);
}

/**
 * x-query-denovmm-stats with a `nics` member (name, tap, link, counters).
 *
 * @param stats the report without NICs
 * @param nics the VM's NICs ({@link nicInfo})
 * @returns the report
 * @example
 * ```ts ignore
 * const s = withNicStats(reporter.next(), vm.nics());
 * ```
 */
export function withNicStats(
  stats: Record<string, unknown>,
  nics: readonly NicInfo[],
): Record<string, unknown> {
  return nics.length > 0 ? { ...stats, nics } : stats;
}

/**
 * query-stats for target `vm` with the NIC counters added to the
 * denovmm provider's entry (`net0-rx-packets`, ...).
 *
 * @param entries the entries without NICs
 * @param target the query's target
 * @param nics the VM's NICs ({@link nicInfo})
 * @returns the entries
 * @example
 * ```ts ignore
 * const e = withNicQueryStats(queryStatsEntries(s, "vm"), "vm", vm.nics());
 * ```
 */
export function withNicQueryStats(
  entries: unknown[],
  target: string,
  nics: readonly NicInfo[],
): unknown[] {
  if (target !== "vm" || nics.length === 0) return entries;
  const extra = nicQueryStats(nics);
  const own = entries.find((e) => (e as { provider?: string }).provider === "denovmm") as
    | { stats: unknown[] }
    | undefined;
  if (own) own.stats.push(...extra);
  else entries.push({ provider: "denovmm", stats: extra });
  return entries;
}

/**
 * NIC counters as `query-stats` entries (`net0-rx-packets`, ...).
 *
 * @param nics the VM's NICs ({@link nicInfo})
 * @returns name/value pairs
 * @example
 * ```ts ignore
 * stats.push(...nicQueryStats(vm.nics()));
 * ```
 */
export function nicQueryStats(nics: readonly NicInfo[]): { name: string; value: number }[] {
  return nics.flatMap((n) =>
    NET_STAT_NAMES.map((k) => ({ name: `${n.name}-${k}`, value: n.stats[k] }))
  );
}
