/**
 * `--nic tap,ifname=NAME[,mac=..][,iothread=N][,vhost=on|off]` from the
 * command line to a served device: parsing, opening the taps on the main
 * thread before the VM exists (so a missing tap or privilege is one line
 * and exit 1), and the factory that builds the device model on the loop
 * that owns its queues (the `{module, factory, args}` shape of the
 * machine's virtio functions).
 *
 * @module
 */
import { adoptTap } from "../../sys/tun.ts";
import type { EventLoop } from "../../mainloop/types.ts";
import { VirtioNet } from "./net.ts";
import { VhostNet } from "./vhost_net.ts";
import type { VirtioDevice } from "./device.ts";
import { linkWord } from "./net_types.ts";
import { eventFdDrain } from "../../sys/fd.ts";
import { parseMac } from "./nic_open.ts";

export {
  defaultMac,
  NET_BACKEND_MODULE,
  type NicOptions,
  nicsFromNetdevs,
  type OpenedNic,
  openNics,
  parseMac,
  parseNicOption,
  vhostNetAvailable,
} from "./nic_open.ts";

/** Arguments of {@link virtioNetBackend} (postMessage-able). */
export interface NetBackendArgs {
  /** The tap fd opened by {@link openNics}. */
  tapFd: number;
  /** Its name. */
  ifname: string;
  /** MAC address text. */
  mac: string;
  /** Kernel data path. */
  vhost?: boolean;
  /** Queue size (default 256). */
  queueSize?: number;
  /** Shared counters and link word (net_types.ts {@link netControlBuffer}). */
  control?: SharedArrayBuffer;
  /** An eventfd the control side writes after changing the link word. */
  linkFd?: number;
}

/**
 * Applies the control buffer's link word to `net` whenever `linkFd` is
 * written (QMP `set_link` from the main thread; the device lives on its
 * own loop's thread).
 *
 * @param loop the loop that owns the device
 * @param net the device
 * @param control its control buffer
 * @param linkFd the eventfd the control side writes
 * @returns a function that stops watching
 * @example
 * ```ts ignore
 * const stop = watchLinkControl(loop, net, control, linkFd);
 * ```
 */
export function watchLinkControl(
  loop: EventLoop,
  net: VirtioNet,
  control: SharedArrayBuffer,
  linkFd: number,
): () => void {
  loop.setFdHandler(linkFd, {
    read() {
      eventFdDrain(linkFd);
      net.setLink(linkWord(control) !== 0);
    },
  });
  return () => loop.setFdHandler(linkFd, null);
}

/**
 * Builds a NIC's device model on the loop that owns its queues: the
 * TypeScript data path, or vhost-net with `vhost`.
 *
 * @param args the tap and its settings
 * @param ctx the loop
 * @returns the model and how to release it (the tap stays with its opener)
 * @example
 * ```ts ignore
 * { module: NET_BACKEND_MODULE, factory: "virtioNetBackend", args: { tapFd, ifname, mac } }
 * ```
 */
export function virtioNetBackend(
  args: NetBackendArgs,
  ctx: { loop: EventLoop },
): { device: VirtioDevice; close(): void } {
  const tap = adoptTap(args.tapFd, args.ifname);
  const options = {
    tap,
    loop: ctx.loop,
    mac: parseMac(args.mac),
    queueSize: args.queueSize,
    control: args.control,
  };
  const device = args.vhost ? new VhostNet(options) : new VirtioNet(options);
  const unwatch = device instanceof VirtioNet && args.control && args.linkFd !== undefined
    ? watchLinkControl(ctx.loop, device, args.control, args.linkFd)
    : null;
  return {
    device,
    close() {
      unwatch?.();
      device.reset(() => {});
      if (device instanceof VhostNet) device.close();
    },
  };
}
