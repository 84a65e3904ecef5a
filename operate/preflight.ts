/**
 * What the CLI checks and installs before the VM exists: thread placement
 * and the main thread's name, and a QMP socket path that can be used. Each
 * failure is one line (a {@link ControlPlaneError}). Kept apart from
 * control_plane.ts, which a run loads only when it has a pid file, QMP or
 * statistics to start.
 *
 * @module
 */
import { sockaddrUn, SocketPathError, socketPathState } from "../sys/unix_socket.ts";
import { ErrnoError } from "../sys/errno.ts";
import { setThreadName } from "../sys/thread.ts";
import { checkPlacement, installPlacement } from "../placement/install.ts";
import { PlacementError, type PlacementFlags } from "../placement/policy.ts";

/** A control-plane set-up failure: one line for stderr, exit 1. */
export class ControlPlaneError extends Error {
  /** @param message what went wrong */
  constructor(message: string) {
    super(message);
    this.name = "ControlPlaneError";
  }
}

/**
 * Names the main thread (`-name ...,process=`) and installs the thread
 * placement: call before the VM's threads exist.
 *
 * @param flags placement flags
 * @param shape vCPU count and I/O threads in use
 * @param processName the main thread's name, if asked
 * @throws ControlPlaneError naming the problem; nothing is applied then
 * @example
 * ```ts ignore
 * preparePlacement({ sched: "vcpu=fifo:10" }, { cpus: 2, iothreads: [] });
 * ```
 */
export function preparePlacement(
  flags: PlacementFlags,
  shape: { cpus: number; iothreads: number[] },
  processName?: string,
): void {
  try {
    const p = checkPlacement(flags, shape);
    if (processName) setThreadName(processName);
    if (p) installPlacement(p);
  } catch (e) {
    if (e instanceof PlacementError) throw new ControlPlaneError(e.message);
    if (e instanceof ErrnoError) throw new ControlPlaneError(`placement: ${e.message}`);
    throw e;
  }
}

/**
 * Checks what can be checked before the VM is built (which opens KVM and
 * starts threads): the QMP socket path is usable.
 *
 * @param o the control-plane options
 * @throws ControlPlaneError naming the problem
 * @example
 * ```ts
 * import { preflightControlPlane } from "./preflight.ts";
 * preflightControlPlane({ qmp: "/tmp/absent-dir-x/q.sock" }); // the bind fails later
 * ```
 */
export function preflightControlPlane(o: { qmp?: string }): void {
  if (o.qmp === undefined) return;
  try {
    sockaddrUn(o.qmp);
    const state = socketPathState(o.qmp);
    if (state === "not-socket") {
      throw new SocketPathError(`'${o.qmp}' exists and is not a socket; not replacing it`);
    }
    if (state === "live-socket") {
      throw new SocketPathError(`'${o.qmp}' is a socket in use by another process`);
    }
  } catch (e) {
    if (e instanceof SocketPathError) throw new ControlPlaneError(`--qmp: ${e.message}`);
    if (e instanceof ErrnoError) throw new ControlPlaneError(`--qmp ${o.qmp}: ${e.message}`);
    throw e;
  }
}
