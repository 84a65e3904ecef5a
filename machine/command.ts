/**
 * The denovmm command: checks the user's input (one line and exit 1 for a
 * mistake), installs the signal policy, runs the machine, and on the way
 * out syncs writable disk images. main.ts hands it Deno.args.
 *
 * @module
 */
import { parseCli, USAGE, UsageError, type VmOptions } from "./cli.ts";
import { runDemo, runLinux } from "./run.ts";
import { describeKvmOpenError } from "./kvm_errors.ts";
import { DiskError, openDisks, type OpenedDisk } from "./disks.ts";
import { ErrnoError } from "../sys/errno.ts";
import { FileTypeError, readFileFfi } from "../sys/fd.ts";
import { libc } from "../sys/libc.ts";
import { installSignalPolicy } from "../sys/signals.ts";
import type { InspectorDoorState } from "../sys/no_inspector.ts";
import { KernelLoaderError } from "../boot/kernel_loader_error.ts";
import { parseBzImage } from "../boot/bzimage.ts";
import { findPvhEntry } from "../boot/elf.ts";
import { EXIT_CODE_CRASH, EXIT_CODE_USAGE } from "../vcpu/exit_codes.ts";

/** The version printed by --version. */
export const VERSION = "0.1.0";

function fail(message: string, code = EXIT_CODE_USAGE): never {
  console.error(`denovmm: ${message}`);
  Deno.exit(code);
}

function readInput(what: string, path: string): Uint8Array<ArrayBuffer> {
  try {
    return readFileFfi(path, 2 ** 31);
  } catch (e) {
    if (e instanceof ErrnoError) {
      const why = e.code === "EISDIR"
        ? "it is a directory"
        : e.message.replace(/^.*\((.*)\)$/, "$1");
      fail(`cannot read ${what} '${path}': ${why}`);
    }
    if (e instanceof FileTypeError) fail(`cannot read ${what} '${path}': it is ${e.fileType}`);
    if (e instanceof RangeError) fail(`${what} '${path}' is too large`);
    throw e;
  }
}

/** How main.ts started the process. */
export interface CommandContext {
  /** Whether SIGUSR1 could be locked out (sys/no_inspector.ts). */
  door?: InspectorDoorState;
}

/**
 * Runs the denovmm command.
 *
 * @param args the command-line arguments (Deno.args)
 * @param context what main.ts did before loading this module
 * @returns the process exit code
 * @example
 * ```ts ignore
 * import { main } from "./machine/command.ts";
 * Deno.exit(await main(["--version"]));
 * ```
 */
export async function main(args: string[], context: CommandContext = {}): Promise<number> {
  installSignalPolicy();
  if (context.door && !context.door.locked) {
    console.error(
      `denovmm: warning: SIGUSR1 cannot be locked out (${context.door.error}); ` +
        "a SIGUSR1 may open Deno's inspector",
    );
  }
  let o: VmOptions;
  try {
    o = parseCli(args);
  } catch (e) {
    if (e instanceof UsageError) fail(e.message);
    throw e;
  }
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  if (o.version) {
    console.log(`denovmm ${VERSION} (deno ${Deno.version.deno})`);
    return 0;
  }
  let disks: OpenedDisk[] = [];
  try {
    if (o.kernel === undefined) return await runDemo(o);
    const kernel = readInput("kernel", o.kernel);
    // Reject what is not a kernel before touching KVM.
    const isElf = kernel[0] === 0x7f && kernel[1] === 0x45 && kernel[2] === 0x4c &&
      kernel[3] === 0x46;
    if (!isElf) parseBzImage(kernel);
    else if (findPvhEntry(kernel) === undefined) {
      throw new KernelLoaderError(
        "vmlinux without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); boot its bzImage instead",
      );
    }
    const initrd = o.initrd === undefined ? undefined : readInput("initrd", o.initrd);
    disks = openDisks(o.disks);
    return await runLinux(o, { kernel, initrd, disks });
  } catch (e) {
    if (e instanceof DiskError) fail(e.message);
    const kvm = describeKvmOpenError(e);
    if (kvm) fail(kvm);
    if (e instanceof KernelLoaderError) fail(`${o.kernel}: ${e.message}`);
    if (e instanceof ErrnoError) fail(e.message, EXIT_CODE_CRASH);
    throw e;
  } finally {
    // Whatever the guest was told is written reaches the disk before exit.
    for (const d of disks) {
      if (!d.file.readOnly) libc.fdatasync(d.file.fd);
      d.file.close();
    }
  }
}
