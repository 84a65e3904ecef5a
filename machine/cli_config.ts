/**
 * The CLI's parsed flags as a {@link VmConfig}: the only bridge between
 * machine/cli.ts and the builder, so the command line can do nothing the
 * library cannot.
 *
 * @module
 */
import type { VmOptions } from "./cli.ts";
import type { VmConfig } from "../vm/config.ts";
import { parseDiskOption } from "../devices/virtio/disk_file.ts";
import { parseNicOption } from "../devices/virtio/nic_open.ts";
import { consoleCmdline } from "../vm/console_cmdline.ts";

/**
 * Turns parsed flags into a configuration: the guest console on stdout,
 * the bundled demo guest when there is no `--kernel` (its assembler, in
 * guests/, is loaded only then: ~35 ms of start-up a `--kernel` run saves).
 *
 * @param o from parseCli
 * @returns the VM to build
 * @example
 * ```ts
 * import { parseCli } from "./cli.ts";
 * import { vmConfigFromCli } from "./cli_config.ts";
 * const config = await vmConfigFromCli(parseCli(["--kernel", "bzImage", "--cpus", "2"]));
 * console.log(config.cpus); // 2
 * ```
 */
export async function vmConfigFromCli(o: VmOptions): Promise<VmConfig> {
  const common = {
    serial: o.serialFile === undefined ? "stdio" as const : { file: o.serialFile },
    logUnclaimed: o.logUnclaimed,
    onReboot: o.reboot ? "restart" as const : "exit" as const,
  };
  if (o.kernel === undefined) {
    // Assembled ahead of time: the assembler is not loaded on the way to the guest.
    const { demoImage, DEMO_MIN_RAM } = await import("../guests/demo_image.ts");
    return {
      ...common,
      flat: demoImage(),
      cpus: 1,
      memory: Math.max(o.memoryBytes, DEMO_MIN_RAM),
    };
  }
  return {
    ...common,
    kernel: o.kernel,
    initrd: o.initrd,
    // --console virtio: console=hvc0 unless --append names a console.
    append: consoleCmdline(o.append, o.console),
    cpus: o.cpus,
    memory: o.memoryBytes,
    // --vnc / --display (ui/vnc): the default mode, served over VNC.
    vnc: o.vnc,
    display: o.display === "none" ? "none" : undefined,
    tablet: o.tablet || undefined,
    disks: o.disks.map((text) => {
      const d = parseDiskOption(text);
      return {
        path: d.path,
        readOnly: d.readOnly,
        aio: d.aio,
        iothread: d.iothread,
        cache: d.cache,
        serial: d.serial,
        numQueues: d.numQueues,
        snapshot: d.snapshot,
      };
    }),
    nics: o.nics.map((text) => {
      const n = parseNicOption(text);
      return { ifname: n.ifname, mac: n.mac, iothread: n.iothread, vhost: n.vhost, id: n.id };
    }),
    rng: o.rng === false ? false : { bytesPerSecond: o.rng.rateBytesPerSec },
    console: o.console === "virtio" ? "virtio" : undefined,
  };
}
