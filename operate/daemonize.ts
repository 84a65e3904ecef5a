/**
 * `-daemonize`, as QEMU does it: the command returns once the VM is set up
 * (QMP socket listening, pid file written) and keeps running detached in a
 * new session; if set-up fails, the command fails with the error.
 *
 * Deno cannot fork (a forked multi-threaded runtime is unusable), so the
 * parent starts a second copy of the same command with posix_spawn through
 * libc (no `--allow-run`): new session, stdin from /dev/null, a pipe at fd 3
 * named by DENOVMM_DAEMON_FD. The copy sets up the VM with stderr still on
 * the terminal (errors reach the user), then writes one byte to the pipe and
 * points stdout and stderr at /dev/null. The parent exits 0 on that byte, or
 * with the copy's exit status when the pipe closes without it.
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { errno, ErrnoError } from "../sys/errno.ts";
import { closeFd, cstring, O_RDONLY, O_RDWR, openFile, pipe } from "../sys/fd.ts";
import { listDirectory, readProcText } from "../sys/procfs.ts";

/** The variable that tells the spawned copy which fd reports readiness. */
export const DAEMON_FD_ENV = "DENOVMM_DAEMON_FD";
const DAEMON_FD = 3;
const POSIX_SPAWN_SETSID = 0x80;

/**
 * In the spawned copy: the readiness fd; undefined in an ordinary run.
 *
 * @returns the fd or undefined
 * @example
 * ```ts
 * import { daemonReadyFd } from "./daemonize.ts";
 * console.log(daemonReadyFd()); // undefined unless started by -daemonize
 * ```
 */
export function daemonReadyFd(): number | undefined {
  const p = libc.getenv(cstring(DAEMON_FD_ENV));
  if (p === null) return undefined;
  const n = Number(Deno.UnsafePointerView.getCString(p));
  return Number.isInteger(n) && n > 2 ? n : undefined;
}

function pointerArray(strings: string[]): { array: BigUint64Array; keep: Uint8Array[] } {
  const keep = strings.map(cstring);
  const array = new BigUint64Array(keep.length + 1);
  keep.forEach((b, i) => array[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b))));
  return { array, keep };
}

function u8(a: BigUint64Array): Uint8Array {
  return new Uint8Array(a.buffer);
}

/**
 * Starts the detached copy and waits for it to be ready; never returns.
 *
 * @returns never: exits 0 when the copy is ready, else with its status
 * @example
 * ```ts ignore
 * if (o.daemonize && daemonReadyFd() === undefined) daemonize();
 * ```
 */
export function daemonize(): never {
  const argv = readProcText("/proc/self/cmdline").split("\0");
  if (argv.at(-1) === "") argv.pop();
  const env = readProcText("/proc/self/environ").split("\0")
    .filter((e) => e !== "" && !e.startsWith(`${DAEMON_FD_ENV}=`));
  env.push(`${DAEMON_FD_ENV}=${DAEMON_FD}`);
  const [rd, wr] = pipe();
  const fa = new Uint8Array(256);
  const attr = new Uint8Array(512);
  const check = (what: string, r: number) => {
    if (r !== 0) throw new ErrnoError(what, r);
  };
  check("posix_spawn_file_actions_init", libc.posix_spawn_file_actions_init(fa));
  check(
    "posix_spawn_file_actions_addopen",
    libc.posix_spawn_file_actions_addopen(fa, 0, cstring("/dev/null"), O_RDONLY, 0),
  );
  check(
    "posix_spawn_file_actions_adddup2",
    libc.posix_spawn_file_actions_adddup2(fa, wr, DAEMON_FD),
  );
  check("posix_spawnattr_init", libc.posix_spawnattr_init(attr));
  check("posix_spawnattr_setflags", libc.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSID));
  const a = pointerArray(argv);
  const e = pointerArray(env);
  const pid = new Int32Array(1);
  check(
    "posix_spawn",
    libc.posix_spawn(
      new Uint8Array(pid.buffer),
      cstring("/proc/self/exe"),
      fa,
      attr,
      u8(a.array),
      u8(e.array),
    ),
  );
  closeFd(wr);
  const b = new Uint8Array(1);
  let n: number;
  do n = Number(libc.read(rd, b, 1n)); while (n < 0 && errno() === 4);
  if (n === 1) Deno.exit(0);
  // The copy failed before it was ready (it said why on stderr).
  const status = new Int32Array(1);
  while (libc.waitpid(pid[0], new Uint8Array(status.buffer), 0) < 0 && errno() === 4) {
    /* retry */
  }
  const s = status[0];
  Deno.exit((s & 0x7f) === 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f));
}

/**
 * In the spawned copy, once the VM is set up: tells the waiting command it
 * may return, and detaches stdout and stderr from the terminal.
 *
 * @param fd from {@link daemonReadyFd}
 * @example
 * ```ts ignore
 * const fd = daemonReadyFd();
 * if (fd !== undefined) daemonReady(fd);
 * ```
 */
export function daemonReady(fd: number): void {
  // Deno keeps duplicates of stdout and stderr (its own stdio resources):
  // every fd open on the same file as 1 or 2 goes to /dev/null, or the
  // command's caller would wait for the terminal pipe to close.
  const ids = new Set<string>();
  for (const std of [1, 2]) {
    const id = fileId(std);
    if (id) ids.add(id);
  }
  const devnull = openFile("/dev/null", O_RDWR);
  for (const name of listDirectory("/proc/self/fd")) {
    const n = Number(name);
    if (n === devnull || n === fd) continue;
    const id = fileId(n);
    if (n <= 2 && n > 0 || (id !== undefined && ids.has(id))) libc.dup2(devnull, n);
  }
  closeFd(devnull);
  libc.write(fd, new Uint8Array([1]), 1n);
  closeFd(fd);
}

function fileId(fd: number): string | undefined {
  const st = new Uint8Array(144);
  if (libc.fstat(fd, st) < 0) return undefined;
  const v = new DataView(st.buffer);
  return `${v.getBigUint64(0, true)}:${v.getBigUint64(8, true)}`;
}
