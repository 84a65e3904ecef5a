/**
 * The command line, spelled as QEMU users type it (long forms): parsing and
 * validation into a {@link VmOptions}. Nothing here touches KVM or files.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseSize } from "./size.ts";
import { parseDiskOption } from "../devices/virtio/disk_file.ts";
import { parseVncOption } from "../ui/vnc/options.ts";

/** A mistake in the command line; main.ts prints the message and exits 1. */
export class UsageError extends Error {
  /** @param message one line naming the problem */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** What the user asked for. */
export interface VmOptions {
  /** Kernel image path (bzImage or vmlinux); absent = the demo guest. */
  kernel?: string;
  /** Initial ramdisk path. */
  initrd?: string;
  /** Kernel command line. */
  append?: string;
  /** vCPUs. */
  cpus: number;
  /** Guest RAM in bytes. */
  memoryBytes: number;
  /** `--disk` option strings, in order. */
  disks: string[];
  /** Restart the guest when it reboots instead of exiting. */
  reboot: boolean;
  /** Log unclaimed port and MMIO accesses. */
  logUnclaimed: boolean;
  /** `--vnc` (display): the option string, checked. */
  vnc?: string;
  /** `--display none` turns the framebuffer off; `--display vnc` is the default with --vnc. */
  display?: "none" | "vnc";
  /** Print help and exit. */
  help: boolean;
  /** Print the version and exit. */
  version: boolean;
}

/** Most vCPUs we describe (xAPIC ids fit in 8 bits; the IOAPIC takes one). */
export const MAX_CPUS = 254;
/** Default RAM, as a size string. */
export const DEFAULT_MEMORY = "256M";

/** The help text. */
export const USAGE = `Usage: deno run --allow-ffi main.ts [options]

Boots a Linux kernel (or, with no --kernel, the bundled demo guest) on KVM,
with the guest's serial console on this terminal. Press Ctrl-A x to quit.

Options:
  --kernel FILE     bzImage or vmlinux to boot
  --initrd FILE     initial ramdisk
  --append TEXT     kernel command line (default: console=ttyS0)
  --cpus N          number of vCPUs (default 1)
  --memory SIZE     guest RAM, e.g. 256M or 1G; a bare number is MiB (default ${DEFAULT_MEMORY})
  --disk SPEC       virtio-blk disk: path[,ro][,aio=threads|io_uring][,iothread=N][,cache=none|writeback]
  --reboot          restart the guest when it reboots (default: exit with code 10)
  --log-unclaimed   log the first access to each port/MMIO address no device claims
  --vnc :N|HOST:N[,password-file=PATH][,websocket[=PORT]]
                    a framebuffer (console=tty0 shows on it) served over VNC on
                    127.0.0.1:5900+N unless HOST is named; PS/2 keyboard input
  --display none|vnc  none: no framebuffer device (the default without --vnc)
  --version         print the version
  --help            print this help

Exit codes: 0 guest powered off, 1 bad input, 2 guest or VMM crashed,
4 stopped from the terminal, 10 guest rebooted, odd codes from isa-debug-exit.`;

/**
 * Parses and validates the command line.
 *
 * @param args Deno.args
 * @returns the options
 * @throws UsageError naming the problem
 * @example
 * ```ts
 * import { parseCli } from "./cli.ts";
 * const o = parseCli(["--kernel", "bzImage", "--memory", "1G", "--cpus", "2"]);
 * console.log(o.memoryBytes, o.cpus);
 * ```
 */
export function parseCli(args: readonly string[]): VmOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        kernel: { type: "string" },
        initrd: { type: "string" },
        append: { type: "string" },
        cpus: { type: "string" },
        memory: { type: "string" },
        disk: { type: "string", multiple: true },
        reboot: { type: "boolean" },
        "log-unclaimed": { type: "boolean" },
        vnc: { type: "string" },
        display: { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new UsageError(`${msg.split(". ")[0].replace(/\.$/, "")} (see --help)`);
  }
  const v = parsed.values;
  const cpusText = v.cpus ?? "1";
  if (!/^\d+$/.test(cpusText) || Number(cpusText) < 1 || Number(cpusText) > MAX_CPUS) {
    throw new UsageError(`Invalid --cpus '${cpusText}': use a whole number from 1 to ${MAX_CPUS}`);
  }
  const memText = v.memory ?? DEFAULT_MEMORY;
  const memoryBytes = parseSize(memText);
  if (memoryBytes === undefined) {
    throw new UsageError(
      `Invalid --memory '${memText}': use a size like 256M or 1G (a bare number is MiB)`,
    );
  }
  if (memoryBytes < 16 * 1024 * 1024) {
    throw new UsageError(`Invalid --memory '${memText}': at least 16M is needed`);
  }
  if (memoryBytes > 1024 ** 4) {
    throw new UsageError(`Invalid --memory '${memText}': at most 1T is supported`);
  }
  if (memoryBytes % 4096 !== 0) {
    throw new UsageError(`Invalid --memory '${memText}': must be a whole number of 4K pages`);
  }
  for (const [name, value] of [["kernel", v.kernel], ["initrd", v.initrd]] as const) {
    if (value === "") throw new UsageError(`--${name} needs a file name`);
  }
  if (v.initrd !== undefined && v.kernel === undefined) {
    throw new UsageError("--initrd needs --kernel");
  }
  if (v.append !== undefined && v.kernel === undefined) {
    throw new UsageError("--append needs --kernel");
  }
  for (const d of v.disk ?? []) {
    try {
      parseDiskOption(d);
    } catch (e) {
      throw new UsageError(`Invalid --disk '${d}': ${(e as Error).message}`);
    }
  }
  if ((v.disk?.length ?? 0) > 0 && v.kernel === undefined) {
    throw new UsageError("--disk needs --kernel");
  }
  // --vnc / --display (ui/vnc).
  if (v.vnc !== undefined) {
    try {
      parseVncOption(v.vnc);
    } catch (e) {
      throw new UsageError(`Invalid --vnc '${v.vnc}': ${(e as Error).message}`);
    }
    if (v.kernel === undefined) throw new UsageError("--vnc needs --kernel");
  }
  if (v.display !== undefined && v.display !== "none" && v.display !== "vnc") {
    throw new UsageError(`Invalid --display '${v.display}': use none or vnc`);
  }
  if (v.display === "none" && v.vnc !== undefined) {
    throw new UsageError("--vnc needs a display: drop --display none");
  }
  if (v.display === "vnc" && v.vnc === undefined) {
    throw new UsageError("--display vnc needs --vnc :N");
  }
  return {
    vnc: v.vnc,
    display: v.display as VmOptions["display"],
    kernel: v.kernel,
    initrd: v.initrd,
    append: v.append,
    cpus: Number(cpusText),
    memoryBytes,
    disks: v.disk ?? [],
    reboot: v.reboot ?? false,
    logUnclaimed: v["log-unclaimed"] ?? false,
    help: v.help ?? false,
    version: v.version ?? false,
  };
}
