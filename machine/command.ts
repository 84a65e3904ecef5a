/**
 * The denovmm command: checks the user's input (one line and exit 1 for a
 * mistake), installs the signal policy (sys/signals.ts), builds and runs
 * the VM with the terminal as its console. main.ts hands it Deno.args after
 * locking SIGUSR1 out.
 *
 * @module
 */
import { parseCli, USAGE, UsageError, type VmOptions } from "./cli.ts";
import { vmConfigFromCli } from "./cli_config.ts";
import { describeKvmOpenError } from "./kvm_errors.ts";
import { createVm, type Vm } from "../vm/vm.ts";
import { dropReadAheads, settleReadAheads } from "../vm/read_ahead.ts";
import { CLI_UNTRACKED_YIELD_NS } from "../mainloop/main_loop.ts";
import { VmConfigError } from "../vm/config.ts";
import { ErrnoError } from "../sys/errno.ts";
import { Terminal } from "../ui/terminal.ts";
import { EXIT_CODE_CRASH, EXIT_CODE_USAGE } from "../vcpu/exit_codes.ts";
import { installSignalPolicy, onTerminate } from "../sys/signals.ts";
import type { InspectorDoorState } from "../sys/no_inspector.ts";
import type { ControlPlane } from "../operate/control_plane.ts";
import {
  ControlPlaneError,
  preflightControlPlane,
  preparePlacement,
} from "../operate/preflight.ts";
import { daemonize, daemonReady, daemonReadyFd } from "../operate/daemonize.ts";
import { parseDiskOption } from "../devices/virtio/disk_file.ts";

/** `1.2.3` as QMP's version triple (its greeting and query-version). */
function versionTriple(v: string): { major: number; minor: number; micro: number } {
  const [major, minor, micro] = v.split(".").map(Number);
  return { major, minor, micro };
}

/** The version printed by --version. */
export const VERSION = "0.1.0";

function fail(message: string, code = EXIT_CODE_USAGE): never {
  console.error(`denovmm: ${message}`);
  Deno.exit(code);
}

async function run(vm: Vm, o: VmOptions): Promise<number> {
  const term = new Terminal({
    loop: vm.loop,
    onInput: (bytes) => vm.serial.offer(bytes),
    onQuit: () => vm.stop(),
    retryMs: 5,
  });
  // SIGTERM/SIGINT/SIGHUP: stop the VM and leave through the normal end
  // below (vCPUs stopped, in-flight I/O completed, images synced, terminal
  // restored), exit 128 + signo. A guest reset racing the signal restarts
  // the machine: stop that one too.
  const offTerminate = onTerminate((signo) => {
    vm.stop(128 + signo);
    vm.on("reset", () => vm.stop(128 + signo));
  });
  let control: ControlPlane | undefined;
  try {
    // QMP, pid file and statistics before the guest runs (-S: QMP cont
    // starts it); their modules load only for a run that asks for one.
    if (o.qmp !== undefined || o.statsInterval !== undefined || o.pidfile !== undefined) {
      const { startControlPlane } = await import("../operate/control_plane.ts");
      control = startControlPlane(vm, {
        qmp: o.qmp,
        statsInterval: o.statsInterval,
        pidfile: o.pidfile,
        version: versionTriple(VERSION),
        name: o.name?.guest,
      });
    }
    const ready = daemonReadyFd();
    if (ready !== undefined) daemonReady(ready);
    term.start();
    if (!o.startPaused) await vm.start();
    const end = await vm.wait();
    for (const e of end.errors) console.error(`denovmm: ${e}`);
    return end.exitCode;
  } catch (e) {
    if (e instanceof ControlPlaneError) {
      offTerminate();
      term.close();
      await vm.close();
      fail(e.message);
    }
    throw e;
  } finally {
    control?.close();
    offTerminate();
    term.close();
    await vm.close();
  }
}

/** How main.ts started the process. */
export interface CommandContext {
  /** Whether SIGUSR1 could be locked out (sys/no_inspector.ts). */
  door?: InspectorDoorState;
}

/**
 * Runs the denovmm command: flags become a VmConfig, the builder makes the
 * VM, the terminal is its serial console.
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
  // -daemonize: a detached copy of this command does the rest; this one
  // returns when it is ready (or fails with its error).
  if (o.daemonize && daemonReadyFd() === undefined) daemonize();
  let vm: Vm;
  try {
    // Thread placement is checked and installed before any thread exists.
    preparePlacement(o.placement, {
      cpus: o.kernel === undefined ? 1 : o.cpus,
      iothreads: o.disks.flatMap((d) => parseDiskOption(d).iothread ?? []),
    }, o.name?.process);
    preflightControlPlane({ qmp: o.qmp });
    // Only the VMM's own code runs on this thread, and it starts no async op
    // that Deno's fd does not announce: turns for such work can be rare.
    // What main.ts read ahead (vm/read_ahead.ts) is in by now; BootFiles take it.
    await settleReadAheads();
    vm = await createVm(await vmConfigFromCli(o), {
      loop: { untrackedYieldNs: CLI_UNTRACKED_YIELD_NS },
    });
    dropReadAheads();
  } catch (e) {
    dropReadAheads();
    if (e instanceof VmConfigError || e instanceof ControlPlaneError) fail(e.message);
    const kvm = describeKvmOpenError(e);
    if (kvm) fail(kvm);
    if (e instanceof ErrnoError) fail(e.message, EXIT_CODE_CRASH);
    throw e;
  }
  return await run(vm, o);
}
