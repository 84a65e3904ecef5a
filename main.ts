/**
 * The denovmm command line:
 *
 *   deno run --allow-ffi main.ts --kernel bzImage [--initrd F] [--append S]
 *     [--cpus N] [--memory SIZE] [--disk SPEC]...
 *
 * With no --kernel it boots the bundled demo guest. The only reader of
 * Deno.args; everything else lives in machine/.
 *
 * @module
 */
import { parseCli, USAGE, UsageError, type VmOptions } from "./machine/cli.ts";
import { runDemo, runLinux } from "./machine/run.ts";
import { describeKvmOpenError } from "./machine/kvm_errors.ts";
import { DiskError, openDisks, type OpenedDisk } from "./machine/disks.ts";
import { ErrnoError } from "./sys/errno.ts";
import { readFileFfi } from "./sys/fd.ts";
import { KernelLoaderError } from "./boot/kernel_loader_error.ts";
import { parseBzImage } from "./boot/bzimage.ts";
import { findPvhEntry } from "./boot/elf.ts";
import { EXIT_CODE_CRASH, EXIT_CODE_USAGE } from "./vcpu/exit_codes.ts";
import { traceMark, tracePrint } from "./sys/start_trace.ts";

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
    if (e instanceof RangeError) fail(`${what} '${path}' is too large`);
    throw e;
  }
}

async function main(args: string[]): Promise<number> {
  traceMark("main.ts runs (runtime start + module loading)");
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
    traceMark("kernel, initrd and disks read");
    return await runLinux(o, { kernel, initrd, disks });
  } catch (e) {
    if (e instanceof DiskError) fail(e.message);
    const kvm = describeKvmOpenError(e);
    if (kvm) fail(kvm);
    if (e instanceof KernelLoaderError) fail(`${o.kernel}: ${e.message}`);
    if (e instanceof ErrnoError) fail(e.message, EXIT_CODE_CRASH);
    throw e;
  } finally {
    for (const d of disks) d.file.close();
  }
}

if (import.meta.main) {
  const code = await main(Deno.args);
  traceMark("exit");
  tracePrint();
  Deno.exit(code);
}
