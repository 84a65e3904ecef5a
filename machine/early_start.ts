/**
 * The first vCPU Worker, started by main.ts before the command's module
 * graph loads. A Worker's start (a V8 isolate, then its modules compiled
 * from source) is the longest step before the first KVM_RUN: ~2-4 s in the
 * nested KVM host, where an empty `deno run` takes ~1.5 s. Started here, it
 * loads on its own thread while the main thread loads the command, reads
 * the configuration and sets up KVM; the builder takes it for vCPU 0
 * (vcpu/prestart.ts) and starts the other vCPUs' Workers itself.
 *
 * Every machine has a vCPU 0, so nothing has to be parsed to know it is
 * needed; the arguments are only looked at for the runs that must start no
 * thread this early:
 * - `--help`, `--version`: no machine;
 * - `-daemonize`: this process only starts a detached copy;
 * - placement (`--vcpu-affinity`, `--affinity`, `--sched`, `--cgroup`): its
 *   role table is published with `setenv`, which must not race with other
 *   threads (sys/thread_role.ts), so threads start after it.
 *
 * This module's static graph is small (vcpu/prestart.ts, sys/worker_url.ts
 * and their sys/ helpers): it is loaded beside the command's graph, not
 * before it.
 *
 * @module
 */
import { prestartVcpuWorkers } from "../vcpu/prestart.ts";
import { importBundled } from "../sys/worker_url.ts";
import { readAhead, readAheadOverlaps } from "../vm/read_ahead.ts";

/** What machine/command.ts exports. */
type CommandModule = typeof import("./command.ts");

/** The module a KVM vCPU thread gets its backend from (kvm/vcpu_backend.ts). */
export const KVM_BACKEND_MODULE: string = new URL("../kvm/vcpu_backend.ts", import.meta.url).href;
/** The PC platform devices every machine has (machine/pc_devices.ts). */
export const PC_DEVICES_MODULE: string = new URL("./pc_devices.ts", import.meta.url).href;
/** The PCI devices a Linux guest has (machine/pci_devices.ts). */
export const PCI_DEVICES_MODULE: string = new URL("./pci_devices.ts", import.meta.url).href;

/** Flags whose runs start no vCPU Worker before the command has read them. */
export const NO_EARLY_START_FLAGS: readonly string[] = [
  "--help",
  "-h",
  "-help",
  "--version",
  "-version",
  "--daemonize",
  "-daemonize",
  "--vcpu-affinity",
  "--affinity",
  "--sched",
  "--cgroup",
];

/**
 * Starts vCPU 0's Worker unless the arguments ask for a run that must not
 * have it yet (see the module documentation).
 *
 * @param args the command-line arguments
 * @returns whether a Worker was started
 * @example
 * ```ts ignore
 * import { startFirstVcpuEarly } from "./early_start.ts";
 * startFirstVcpuEarly(Deno.args);
 * ```
 */
export function startFirstVcpuEarly(args: readonly string[]): boolean {
  const flag = (a: string) => a.replace(/=.*$/s, "");
  if (args.some((a) => NO_EARLY_START_FLAGS.includes(flag(a)))) return false;
  // The kernel and initrd are read on Deno's pool while new Worker() below
  // holds this thread (vm/read_ahead.ts); the command line is parsed for
  // real later, and a file named wrongly is reported then. Not on one CPU,
  // where the read would only take turns with the Worker's start.
  if (readAheadOverlaps()) { for (const path of bootFilesNamed(args)) readAhead(path); }
  // With a kernel, the machine has PCI (virtio-rng at least); the demo guest has none.
  const linux = args.some((a) => flag(a) === "--kernel" || flag(a) === "-kernel");
  const modules = [KVM_BACKEND_MODULE, PC_DEVICES_MODULE];
  if (linux) modules.push(PCI_DEVICES_MODULE);
  prestartVcpuWorkers(1, modules);
  return true;
}

/** Flags that name a file the machine boots from (machine/cli.ts spells them so). */
const BOOT_FILE_FLAGS = ["--kernel", "-kernel", "--initrd", "-initrd"];

/**
 * The kernel and initrd paths the arguments name, as machine/cli.ts reads
 * them (`--kernel F`, `--kernel=F`, `-kernel F`); a value that is not one
 * (a flag's own value that merely looks like one) costs only a read-ahead
 * nobody takes.
 *
 * @param args the command-line arguments
 * @returns the paths, in order
 * @example
 * ```ts
 * import { bootFilesNamed } from "./early_start.ts";
 * console.log(bootFilesNamed(["-kernel", "bzImage", "--initrd=rd.cpio", "-m", "1G"]));
 * // ["bzImage", "rd.cpio"]
 * ```
 */
export function bootFilesNamed(args: readonly string[]): string[] {
  const paths: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const name = eq < 0 ? a : a.slice(0, eq);
    if (!BOOT_FILE_FLAGS.includes(name)) continue;
    if (eq >= 0) paths.push(a.slice(eq + 1));
    else if (i + 1 < args.length) paths.push(args[++i]);
  }
  return paths;
}

/**
 * Loads machine/command.ts for main.ts: under `--allow-ffi` alone as one
 * bundle of its graph (sys/worker_url.ts `importBundled`), sharing the
 * modules main.ts and this module already run; otherwise a plain import.
 *
 * @returns the command module
 * @example
 * ```ts ignore
 * import { importCommand } from "./early_start.ts";
 * const { main } = await importCommand();
 * ```
 */
export async function importCommand(): Promise<CommandModule> {
  const roots = [Deno.mainModule, import.meta.url];
  return await importBundled(new URL("./command.ts", import.meta.url), roots) as CommandModule;
}
