/**
 * What an operator drives a running VM with, set up around the builder's
 * VM by the CLI: thread placement (before the VM exists), the pid file, the
 * QMP socket, and the statistics line. Each piece that fails says so in one
 * line (a {@link ControlPlaneError}) before the guest runs. The checks made
 * before the VM exists live in preflight.ts, so that a run with no pid file,
 * QMP or statistics never loads this module (the QMP server, the statistics).
 *
 * @module
 */
import { type NicInfo, withNicQueryStats, withNicStats } from "../vm/nic_control.ts";
import type { EventLoop } from "../mainloop/types.ts";
import type { LoopStats } from "../mainloop/loop_stats.ts";
import type { VmControl } from "../vcpu/vm_control.ts";
import { QmpServer } from "../qmp/server.ts";
import { type ControllableVm, VmQmpTarget } from "../qmp/vm_target.ts";
import { QmpError } from "../qmp/commands.ts";
import type { Screenshot } from "../ui/screenshot.ts";
import { writeScreendump } from "../ui/screendump.ts";
import { SocketPathError } from "../sys/unix_socket.ts";
import { ErrnoError } from "../sys/errno.ts";
import { queryStatsEntries, startStatsPrinter, StatsReporter } from "../stats/report.ts";
import type { StatsSources } from "../stats/sample.ts";
import { Pidfile, PidfileError } from "./pidfile.ts";
import { ControlPlaneError } from "./preflight.ts";

export { ControlPlaneError, preflightControlPlane, preparePlacement } from "./preflight.ts";

/** The VM as the control plane sees it. */
export interface OperatedVm extends ControllableVm {
  /** Its main loop. */
  readonly loop: EventLoop;
  /** The running machine's control block (exit counters), if exposed. */
  readonly vcpuControl?: VmControl;
  /** Its NICs with link and counters (x-query-net, statistics). */
  nics?(): NicInfo[];
  /** QMP set_link. */
  setLink?(name: string, up: boolean): void;
  /** The display now (QMP screendump); undefined without one. */
  screenshot?(): Screenshot | undefined;
  /** Keys on the PS/2 keyboard (QMP send-key). */
  sendKeys?(keys: readonly (string | number)[], options?: { holdMs?: number }): Promise<void>;
}

/** What to set up. */
export interface ControlPlaneOptions {
  /** QMP socket path. */
  qmp?: string;
  /** Seconds between statistics lines. */
  statsInterval?: number;
  /** Pid file path. */
  pidfile?: string;
  /** QMP greeting version. */
  version?: { major: number; minor: number; micro: number };
  /** Guest name for query-name. */
  name?: string;
}

/** A running control plane. */
export interface ControlPlane {
  /** The QMP server, when asked for. */
  readonly qmp?: QmpServer;
  /** Stops everything it started and removes its files. */
  close(): void;
}

/**
 * Starts the pid file, QMP and statistics for a built VM (before it starts).
 *
 * @param vm the VM
 * @param o what to start
 * @returns the control plane
 * @throws ControlPlaneError naming the problem (nothing is left behind then)
 * @example
 * ```ts ignore
 * const cp = startControlPlane(vm, { qmp: "/run/vm.qmp", statsInterval: 5 });
 * await vm.wait();
 * cp.close();
 * ```
 */
export function startControlPlane(vm: OperatedVm, o: ControlPlaneOptions): ControlPlane {
  const loop = vm.loop as EventLoop & { enableStats?: () => LoopStats };
  const sources: StatsSources = {
    control: () => vm.vcpuControl,
    vcpuTids: () => vm.vcpuThreadIds,
    loop: o.qmp !== undefined || o.statsInterval !== undefined ? loop.enableStats?.() : undefined,
  };
  const undo: (() => void)[] = [];
  const close = () => {
    while (undo.length) undo.pop()!();
  };
  let qmp: QmpServer | undefined;
  try {
    if (o.pidfile !== undefined) {
      const p = Pidfile.create(o.pidfile);
      undo.push(() => p.remove());
    }
    if (o.qmp !== undefined) {
      const reporter = new StatsReporter(sources);
      const target = new VmQmpTarget(vm, {
        stats: () =>
          withNicStats(reporter.next() as unknown as Record<string, unknown>, vm.nics?.() ?? []),
        queryStats: (t) =>
          withNicQueryStats(queryStatsEntries(reporter.next(), t), t, vm.nics?.() ?? []),
        nets: vm.nics ? () => vm.nics!() : undefined,
        setLink: vm.setLink ? (name, up) => vm.setLink!(name, up) : undefined,
        screendump: (path, format) => {
          const shot = vm.screenshot?.();
          if (!shot) {
            throw new QmpError("GenericError", "There is no console to take a screendump from");
          }
          writeScreendump(path, shot, format);
        },
        sendKey: vm.sendKeys
          ? (keys, holdMs) => {
            vm.sendKeys!(keys, { holdMs }).catch((e) =>
              console.error(`qmp: send-key: ${(e as Error).message}`)
            );
          }
          : undefined,
        name: o.name,
      });
      let server: QmpServer;
      try {
        server = QmpServer.listen(loop, o.qmp, target, { version: o.version });
      } catch (e) {
        if (e instanceof SocketPathError) throw new ControlPlaneError(`--qmp: ${e.message}`);
        if (e instanceof ErrnoError) throw new ControlPlaneError(`--qmp ${o.qmp}: ${e.message}`);
        throw e;
      }
      qmp = server;
      const unbridge = target.bridgeEvents(server);
      undo.push(() => {
        unbridge();
        server.close();
      });
    }
    if (o.statsInterval !== undefined) {
      undo.push(startStatsPrinter(loop, sources, o.statsInterval));
    }
  } catch (e) {
    close();
    if (e instanceof PidfileError) throw new ControlPlaneError(e.message);
    throw e;
  }
  return { qmp, close };
}
