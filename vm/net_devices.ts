/**
 * The network, entropy and console parts of a {@link VmConfig}: taps
 * opened while the configuration is resolved (so a missing tap or
 * privilege is one line before anything runs), and the virtio functions
 * the builder places for them (virtio-net, virtio-rng, virtio-console),
 * each built by its factory on the loop that owns its queues.
 *
 * @module
 */
import type { VirtioFunctionConfig, VmConfig } from "./config.ts";
import { VmConfigError } from "./config.ts";
import { NET_BACKEND_MODULE, type OpenedNic, openNics } from "../devices/virtio/nic_open.ts";
import type { NetBackendArgs } from "../devices/virtio/net_backend.ts";
import { RNG_MODULE } from "../devices/virtio/rng.ts";
import { CONSOLE_MODULE, virtioConsoleById } from "../devices/virtio/console.ts";
import { TapError } from "../sys/tun.ts";
import { closeFd, eventFd } from "../sys/fd.ts";
import { netControlBuffer } from "../devices/virtio/net_types.ts";

/** A NIC's shared counters and link word, and the eventfd that tells its loop the word changed. */
export interface NicControl {
  /** net_types.ts control buffer. */
  readonly buffer: SharedArrayBuffer;
  /** Written after the link word changes. */
  readonly linkFd: number;
}

/** What {@link resolveNetDevices} opened and decided. */
export interface ResolvedNetDevices {
  /** Open taps, one virtio-net each (closed by {@link closeNetDevices}). */
  readonly nics: readonly OpenedNic[];
  /** Each NIC's counters and link control, in the same order. */
  readonly controls: readonly NicControl[];
  /** virtio-rng, with its rate limit, or none. */
  readonly rng: false | { readonly bytesPerSecond?: number };
  /** virtio-console (hvc0) in place of the serial port's input and output. */
  readonly console: "virtio" | "none";
}

/**
 * How many PCI functions these parts of a configuration take.
 *
 * @param c the configuration
 * @returns the function count
 * @example
 * ```ts
 * import { netFunctionCount } from "./net_devices.ts";
 * console.log(netFunctionCount({ rng: true, console: "virtio" })); // 2
 * ```
 */
export function netFunctionCount(c: VmConfig): number {
  return (c.nics?.length ?? 0) + (c.rng ? 1 : 0) + (c.console === "virtio" ? 1 : 0);
}

/**
 * Checks the network, rng and console settings and opens the taps.
 *
 * @param c the configuration
 * @returns what the builder places
 * @throws {VmConfigError} one line naming the tap or setting and the problem
 * @example
 * ```ts ignore
 * const net = resolveNetDevices({ kernel: "bzImage", nics: [{ ifname: "tap0" }] });
 * ```
 */
export function resolveNetDevices(c: VmConfig): ResolvedNetDevices {
  const rate = typeof c.rng === "object" ? c.rng.bytesPerSecond : undefined;
  if (rate !== undefined && (!Number.isSafeInteger(rate) || rate <= 0)) {
    throw new VmConfigError(`Invalid rng rate ${rate}: a positive number of bytes per second`);
  }
  if (c.console !== undefined && c.console !== "virtio" && c.console !== "none") {
    throw new VmConfigError(`Invalid console '${c.console}': use virtio or none`);
  }
  if (netFunctionCount(c) > 0 && c.kernel === undefined) {
    throw new VmConfigError("--nic, --rng and --console virtio need --kernel");
  }
  let nics: OpenedNic[];
  try {
    nics = openNics(c.nics ?? []);
  } catch (e) {
    if (e instanceof TapError) throw new VmConfigError(e.message);
    throw e;
  }
  const controls = nics.map(() => ({ buffer: netControlBuffer(), linkFd: eventFd() }));
  return {
    nics,
    controls,
    rng: c.rng ? { bytesPerSecond: rate } : false,
    console: c.console ?? "none",
  };
}

/**
 * Closes the taps {@link resolveNetDevices} opened.
 *
 * @param r what it returned
 * @example
 * ```ts ignore
 * closeNetDevices(rc.net);
 * ```
 */
export function closeNetDevices(r: ResolvedNetDevices): void {
  for (const n of r.nics) n.tap.close();
  for (const c of r.controls) closeFd(c.linkFd);
}

let nextConsoleId = 0;

/**
 * The virtio functions for these parts, in placement order: NICs, rng,
 * console. The console's output goes to `consoleFd` like the serial
 * port's; {@link consoleInput} finds it for input.
 *
 * @param r the resolved parts
 * @param consoleFd where guest console bytes go
 * @returns the functions, and the console's registry id if there is one
 * @example
 * ```ts ignore
 * const { functions, consoleId } = netFunctionsOf(rc.net, env.consoleFd);
 * ```
 */
export function netFunctionsOf(
  r: ResolvedNetDevices,
  consoleFd: number,
): { functions: VirtioFunctionConfig[]; consoleId?: number } {
  const functions: VirtioFunctionConfig[] = r.nics.map((n, i) => {
    const args: NetBackendArgs = {
      tapFd: n.tap.fd,
      ifname: n.tap.name,
      mac: n.options.mac,
      vhost: n.options.vhost,
      control: r.controls[i].buffer,
      linkFd: r.controls[i].linkFd,
    };
    return {
      module: NET_BACKEND_MODULE,
      factory: "virtioNetBackend",
      args,
      iothread: n.options.iothread,
      name: `virtio-net${i}`,
    };
  });
  if (r.rng) {
    functions.push({
      module: RNG_MODULE,
      factory: "virtioRngBackend",
      args: { rateBytesPerSec: r.rng.bytesPerSecond },
      name: "virtio-rng0",
    });
  }
  let consoleId: number | undefined;
  if (r.console === "virtio") {
    consoleId = nextConsoleId++;
    // The main loop: the terminal and the serial streams feed it in-thread.
    functions.push({
      module: CONSOLE_MODULE,
      factory: "virtioConsoleBackend",
      args: { outFd: consoleFd, id: consoleId },
      name: "virtio-console0",
    });
  }
  return { functions, consoleId };
}

/**
 * Input for the virtio console built for `consoleId` (serial-style: takes
 * what the guest's buffers hold and returns how much).
 *
 * @param consoleId from {@link netFunctionsOf}
 * @returns the input sink
 * @example
 * ```ts ignore
 * serial.input = consoleInput(consoleId);
 * ```
 */
export function consoleInput(consoleId: number): (bytes: Uint8Array) => number {
  return (bytes) => virtioConsoleById(consoleId)?.enqueueInput(bytes) ?? 0;
}
