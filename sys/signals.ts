/**
 * What each signal does to the VMM, in one place.
 *
 * | signals                                        | the VMM                               |
 * | ---------------------------------------------- | ------------------------------------- |
 * | SIGUSR1                                        | ignored, locked (sys/no_inspector.ts) |
 * | SIGHUP, SIGINT, SIGTERM                        | clean end: the {@link onTerminate}    |
 * |                                                | handler stops the VM; exit 128+signo  |
 * | SIGQUIT, SIGTRAP, SIGABRT, SIGALRM, SIGSTKFLT, | restore hooks run (the terminal), then|
 * | SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO,   | the process dies of the same signal   |
 * | SIGPWR, SIGSYS                                 | (default action, as the parent expects)|
 * |                                                | - except SIGPROF under `deno run      |
 * |                                                | --cpu-prof`: V8's sampling profiler's |
 * |                                                | own signal, left to it                |
 * | SIGUSR2                                        | the vCPU kick: interrupts KVM_RUN only|
 * | SIGPIPE                                        | ignored (Deno's default): writes fail |
 * |                                                | with EPIPE instead                    |
 * | real-time signals 34..64                       | ignored: Deno cannot catch them, and  |
 * |                                                | dying of one would skip the restore   |
 *
 * A second SIGHUP/SIGINT/SIGTERM while the first is being handled ends the
 * process at once (restore hooks, then exit 128+signo). Signals whose
 * default action stops the process (SIGTSTP, SIGTTIN, SIGTTOU) and the
 * synchronous faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE, which Deno does not
 * let JS catch) keep their default actions.
 *
 * Handlers run on the main isolate's event loop, which stays responsive
 * while the main loop waits (it polls on Deno's blocking pool). They are
 * listening only while there is something to do - a restore hook (the
 * terminal in raw mode) or a terminate handler (a running VM): a JS listener
 * replaces the default action, and JS cannot run while the main thread is
 * blocked in a synchronous call (opening a FIFO, say). Outside those times
 * the defaults apply, and SIGTERM ends the process whatever it is doing.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { errno } from "./errno.ts";
import { readProcText } from "./procfs.ts";

/** Signals that end the VMM cleanly, with their numbers. */
export const GRACEFUL_SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGTERM: 15,
};

/** Signals that end the VMM at once (after the restore hooks), with their numbers. */
export const FATAL_SIGNALS: Readonly<Record<string, number>> = {
  SIGQUIT: 3,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGALRM: 14,
  SIGSTKFLT: 16,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

/** The signal that kicks a vCPU thread out of KVM_RUN. */
export const SIGUSR2 = 12;
const SIGRTMIN = 34;
const SIGRTMAX = 64;
const SYS_rt_sigaction = 13n;
const SYS_kill = 62n;
const ESRCH = 3;
const SIG_DFL = 0n;
const SIG_IGN = 1n;

/** Receives a graceful-end signal (its number). */
export type TerminateHandler = (signo: number) => void;

const restoreHooks = new Set<() => void>();
const terminateHandlers: TerminateHandler[] = [];
let installed = false;
let terminating = 0;
let listening = false;
const listeners: { name: Deno.Signal; fn: () => void }[] = [];

function setDisposition(signo: number, handler: bigint): boolean {
  const act = new Uint8Array(32); // struct kernel_sigaction
  new DataView(act.buffer).setBigUint64(0, handler, true);
  const p = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(act)));
  return libc.syscall(SYS_rt_sigaction, BigInt(signo), p, 0n, 8n, 0n, 0n) === 0n;
}

/** Runs every restore hook once, each isolated from the others' failures. */
export function runRestoreHooks(): void {
  for (const hook of [...restoreHooks]) {
    restoreHooks.delete(hook);
    try {
      hook();
    } catch {
      // Keep going: the next hook may be the terminal.
    }
  }
}

/**
 * Whether a process with this pid exists (kill(pid, 0): only ESRCH says it
 * does not; one this process may not signal exists).
 *
 * @param pid a process id
 * @returns false only when no such process exists
 * @example
 * ```ts
 * import { processExists } from "./signals.ts";
 * console.log(processExists(Deno.pid)); // true
 * ```
 */
export function processExists(pid: number): boolean {
  return libc.syscall(SYS_kill, BigInt(pid), 0n, 0n, 0n, 0n, 0n) === 0n || errno() !== ESRCH;
}

/**
 * Ends the process the way `signo`'s default action does, after the restore
 * hooks: the parent sees a death by that signal (or, should the signal not
 * end the process, exit status 128 + signo).
 *
 * @param signo the signal number
 */
export function dieBySignal(signo: number): never {
  runRestoreHooks();
  if (setDisposition(signo, SIG_DFL)) {
    libc.syscall(SYS_kill, BigInt(libc.getpid()), BigInt(signo), 0n, 0n, 0n, 0n);
  }
  Deno.exit(128 + signo);
}

function onGraceful(signo: number): void {
  const handler = terminateHandlers.at(-1);
  if (terminating || !handler) {
    runRestoreHooks();
    Deno.exit(128 + signo);
  }
  terminating = signo;
  handler(signo);
}

function kickNoop(): void {}

/**
 * Whether Deno runs this process with V8's CPU profiler (`--cpu-prof`),
 * which samples with SIGPROF: read from /proc/self/cmdline through libc.
 */
function v8Profiling(): boolean {
  try {
    return readProcText("/proc/self/cmdline").split("\0").includes("--cpu-prof");
  } catch {
    return false;
  }
}

/** Listens to the graceful and fatal signals while a hook or handler exists. */
function syncListeners(): void {
  const want = restoreHooks.size > 0 || terminateHandlers.length > 0;
  if (want === listening) return;
  listening = want;
  if (want) {
    if (listeners.length === 0) {
      for (const [name, signo] of Object.entries(GRACEFUL_SIGNALS)) {
        listeners.push({ name: name as Deno.Signal, fn: () => onGraceful(signo) });
      }
      const profiling = v8Profiling();
      for (const [name, signo] of Object.entries(FATAL_SIGNALS)) {
        // A listener would take V8's sampling signal: the first sample would end the VMM.
        if (name === "SIGPROF" && profiling) continue;
        listeners.push({ name: name as Deno.Signal, fn: () => dieBySignal(signo) });
      }
    }
    for (const l of listeners) Deno.addSignalListener(l.name, l.fn);
  } else {
    for (const l of listeners) Deno.removeSignalListener(l.name, l.fn);
  }
}

/**
 * Installs the policy in the table above. Idempotent; main.ts calls it at
 * start-up, before any device or terminal exists. (The graceful and fatal
 * signals are caught from the first {@link addRestoreHook} or
 * {@link onTerminate} on, until the last is removed.)
 *
 * @example
 * ```ts ignore
 * import { installSignalPolicy } from "./sys/signals.ts";
 * installSignalPolicy();
 * ```
 */
export function installSignalPolicy(): void {
  if (installed) return;
  installed = true;
  installKickSignal();
  for (let s = SIGRTMIN; s <= SIGRTMAX; s++) setDisposition(s, SIG_IGN);
}

/**
 * Makes SIGUSR2 (the vCPU kick) interrupt blocking calls instead of ending
 * the process. Idempotent; part of {@link installSignalPolicy}, and called
 * by vCPU code for programs that do not install the whole policy.
 */
export function installKickSignal(): void {
  if (kickInstalled) return;
  kickInstalled = true;
  Deno.addSignalListener("SIGUSR2", kickNoop);
}
let kickInstalled = false;

/**
 * Registers what a graceful-end signal does while a machine runs (the
 * latest registration wins); without one, such a signal ends the process
 * after the restore hooks with exit status 128 + signo.
 *
 * @param handler called once, with the signal number; it should stop the VM
 *   so that the normal end path runs (and exit 128 + signo)
 * @returns a function that removes the handler
 * @example
 * ```ts ignore
 * import { onTerminate } from "./sys/signals.ts";
 * const off = onTerminate((signo) => machine.stop(128 + signo));
 * await machine.run();
 * off();
 * ```
 */
export function onTerminate(handler: TerminateHandler): () => void {
  terminateHandlers.push(handler);
  syncListeners();
  return () => {
    const i = terminateHandlers.lastIndexOf(handler);
    if (i >= 0) terminateHandlers.splice(i, 1);
    syncListeners();
  };
}

/**
 * The graceful-end signal that arrived, if any (for a runner that would
 * otherwise start the machine again, as `--reboot` does).
 *
 * @returns the signal number once SIGHUP, SIGINT or SIGTERM was handled, else 0
 */
export function terminationSignal(): number {
  return terminating;
}

/**
 * Registers something to put back before the process ends by a signal (the
 * terminal's mode). Hooks run once, in registration order.
 *
 * @param hook restores state; must not throw (failures are ignored)
 * @returns a function that removes the hook
 * @example
 * ```ts ignore
 * import { addRestoreHook } from "./sys/signals.ts";
 * const remove = addRestoreHook(() => terminal.restore());
 * ```
 */
export function addRestoreHook(hook: () => void): () => void {
  restoreHooks.add(hook);
  syncListeners();
  return () => {
    restoreHooks.delete(hook);
    syncListeners();
  };
}
