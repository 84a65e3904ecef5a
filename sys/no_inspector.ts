/**
 * Closes Deno's debugger door for the life of the process.
 *
 * Deno 2.9 answers SIGUSR1 as Node does: 500 ms after start-up a task calls
 * `deno_signals::signal_stream(SIGUSR1)` (a signal-hook `sigaction`), and
 * each SIGUSR1 after that opens the V8 inspector on 127.0.0.1:9229. Whoever
 * can signal the VMM could then run code in a process that holds the FFI
 * permission. A JS listener does not stop it (both run), and setting SIG_IGN
 * early does not either: signal-hook installs its own handler over it.
 *
 * The mechanism here holds from the call to exit, with no race:
 * 1. `rt_sigaction(SIGUSR1, SIG_IGN)`: from now on a SIGUSR1 is discarded by
 *    the kernel (no thread is interrupted, KVM_RUN does not see EINTR);
 * 2. `PR_SET_NO_NEW_PRIVS` (needed to install a filter without
 *    CAP_SYS_ADMIN; the VMM never executes anything, so it costs nothing);
 * 3. a seccomp filter, synchronised to every thread (`SECCOMP_FILTER_FLAG_
 *    TSYNC`) and inherited by every thread started later, that fails any
 *    `rt_sigaction(SIGUSR1, act != NULL)` with EPERM. Deno's listener then
 *    fails to register and gives up quietly; nothing can undo step 1.
 *
 * Before this runs (process start until the first module is evaluated), the
 * disposition is the default one, which ends the process: SIGUSR1 in that
 * window kills the VMM, it cannot open the inspector - as long as Deno's
 * listener does not exist yet. main.ts calls this from a first module that
 * imports nothing but libc.ts and loads the rest of the program only
 * afterwards, so that is normally the case (the lock lands ~50-100 ms after
 * start on an idle host; tests/signals_test.ts prints it).
 *
 * On a slow or overloaded host, loading those two modules can take longer
 * than Deno's 500 ms grace period: Deno's handler is then already in place
 * (step 1 reads back the disposition it replaces), a SIGUSR1 may already be
 * queued for its task, and that task would open the inspector at the next
 * turn of the event loop even though the signal is now ignored. In that
 * case the process re-executes itself at once, synchronously, before any
 * turn of the event loop: `execve(/proc/self/exe)` with the same arguments
 * and environment. The new image starts with SIGUSR1 ignored (an ignored
 * disposition survives execve) and the seccomp filter in place (so does
 * the filter), so it has no window at all; the old image, its threads and
 * any inspector socket it may have opened are gone. What remains is the old
 * image's time between Deno's handler (500 ms) and this call, during which
 * a SIGUSR1 could open the inspector for the few milliseconds until the
 * exec; an attacker would have to signal, connect and evaluate inside it.
 *
 * @module
 */
import { libc } from "./libc.ts";

const SYS_rt_sigaction = 13;
const SYS_seccomp = 317n;
const SYS_x32_rt_sigaction = 0x4000_0000 + 512;
const SIGUSR1 = 10;
const SIG_IGN = 1n;
const PR_SET_NO_NEW_PRIVS = 38;
const PR_GET_NO_NEW_PRIVS = 39;
const PR_GET_SECCOMP = 21;
const SECCOMP_SET_MODE_FILTER = 1n;
const SECCOMP_FILTER_FLAG_TSYNC = 1n;
const SECCOMP_RET_ALLOW = 0x7fff_0000;
const SECCOMP_RET_ERRNO = 0x0005_0000;
const EPERM = 1;
const AUDIT_ARCH_X86_64 = 0xc000_003e;

// Classic BPF opcodes (linux/filter.h).
const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_RET_K = 0x06;

/** What {@link closeInspectorDoor} did. */
export interface InspectorDoorState {
  /** SIGUSR1 is ignored. */
  ignored: boolean;
  /**
   * Deno's SIGUSR1 handler was already installed when the lock went in (the
   * process re-executes itself in that case, so a running VMM reports false).
   */
  raced: boolean;
  /** The seccomp filter that keeps it ignored is in place on every thread. */
  locked: boolean;
  /** Why the filter could not be installed (errno name), if it could not. */
  error?: string;
}

function pointer(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * The filter program: allow everything except rt_sigaction(SIGUSR1, act)
 * with a non-NULL act, in the x86-64 and x32 system-call ABIs. (The i386
 * ABI is left alone: nothing in this process - Deno, V8, libc - uses it, and
 * the threat is a signal from outside, not code inside the process.)
 */
function program(): Uint8Array<ArrayBuffer> {
  const insns: [number, number, number, number][] = [];
  const ld = (off: number) => insns.push([BPF_LD_W_ABS, 0, 0, off]);
  const jeq = (k: number, jt: number, jf: number) => insns.push([BPF_JEQ_K, jt, jf, k]);
  const ret = (k: number) => insns.push([BPF_RET_K, 0, 0, k]);
  // seccomp_data: nr @0, arch @4, ip @8, args[i] @16+8i (low word first).
  // Jump offsets count from the next instruction.
  ld(4); //                                0  arch
  jeq(AUDIT_ARCH_X86_64, 0, 10); //        1  other ABI -> 12 allow
  ld(0); //                                2  nr
  jeq(SYS_rt_sigaction, 1, 0); //          3  -> 5
  jeq(SYS_x32_rt_sigaction, 0, 7); //      4  other call -> 12 allow
  ld(16); //                               5  args[0]: the signal
  jeq(SIGUSR1, 0, 5); //                   6  another signal -> 12 allow
  ld(24); //                               7  args[1] (act), low word
  jeq(0, 0, 2); //                         8  non-NULL -> 11 deny
  ld(28); //                               9  act, high word
  jeq(0, 1, 0); //                         10 NULL (a query) -> 12 allow
  ret(SECCOMP_RET_ERRNO | EPERM); //       11
  ret(SECCOMP_RET_ALLOW); //               12
  const buf = new Uint8Array(insns.length * 8);
  const v = new DataView(buf.buffer);
  insns.forEach(([code, jt, jf, k], i) => {
    v.setUint16(i * 8, code, true);
    buf[i * 8 + 2] = jt;
    buf[i * 8 + 3] = jf;
    v.setUint32(i * 8 + 4, k, true);
  });
  return buf;
}

function errnoName(): string {
  const e = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(libc.__errno_location()!, 4))[0];
  return e === EPERM ? "EPERM" : e === 22 ? "EINVAL" : e === 38 ? "ENOSYS" : `errno ${e}`;
}

let state: InspectorDoorState | undefined;

/**
 * Ignores SIGUSR1 and locks that disposition for the rest of the process
 * (see the module doc). Idempotent; call it before loading anything else.
 *
 * @returns whether the signal is ignored and the lock is in place
 * @example
 * ```ts ignore
 * import { closeInspectorDoor } from "./sys/no_inspector.ts";
 * const s = closeInspectorDoor();
 * if (!s.locked) console.error(`SIGUSR1 lock unavailable: ${s.error}`);
 * ```
 */
export function closeInspectorDoor(): InspectorDoorState {
  if (state) return state;
  // struct kernel_sigaction: handler, flags, restorer, mask (8 bytes each).
  const act = new Uint8Array(32);
  const old = new Uint8Array(32);
  new DataView(act.buffer).setBigUint64(0, SIG_IGN, true);
  const sig = BigInt(SIGUSR1);
  const r0 = libc.syscall(BigInt(SYS_rt_sigaction), sig, pointer(act), pointer(old), 8n, 0n, 0n);
  if (r0 !== 0n && inheritedLock()) return state = { ignored: true, raced: false, locked: true };
  const ignored = r0 === 0n;
  // Anything but SIG_DFL (0) or SIG_IGN (1) is a handler: Deno's.
  const raced = ignored && new DataView(old.buffer).getBigUint64(0, true) > SIG_IGN;
  if (!ignored) return state = { ignored, raced, locked: false, error: errnoName() };
  if (
    libc.prctl(PR_GET_NO_NEW_PRIVS, 0n, 0n, 0n, 0n) !== 1 &&
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1n, 0n, 0n, 0n) !== 0
  ) {
    return state = { ignored, raced, locked: false, error: errnoName() };
  }
  const filter = program();
  // struct sock_fprog: u16 len, (pad), struct sock_filter *filter.
  const prog = new Uint8Array(16);
  const pv = new DataView(prog.buffer);
  pv.setUint16(0, filter.length / 8, true);
  pv.setBigUint64(8, pointer(filter), true);
  const r = libc.syscall(
    SYS_seccomp,
    SECCOMP_SET_MODE_FILTER,
    SECCOMP_FILTER_FLAG_TSYNC,
    pointer(prog),
    0n,
    0n,
    0n,
  );
  // TSYNC returns a thread id (> 0) when some thread could not be synchronised.
  if (r !== 0n) {
    return state = {
      ignored,
      raced,
      locked: false,
      error: r > 0n ? `thread ${r}` : errnoName(),
    };
  }
  if (raced) reexecute(); // returns only if execve failed
  return state = { ignored, raced, locked: true };
}

/**
 * Whether this image was started already locked (it was re-executed, or a
 * parent locked it): SIGUSR1 is ignored and a seccomp filter refuses to
 * change that.
 */
function inheritedLock(): boolean {
  const old = new Uint8Array(32);
  const r = libc.syscall(BigInt(SYS_rt_sigaction), BigInt(SIGUSR1), 0n, pointer(old), 8n, 0n, 0n);
  return r === 0n && new DataView(old.buffer).getBigUint64(0, true) === SIG_IGN &&
    libc.prctl(PR_GET_SECCOMP, 0n, 0n, 0n, 0n) === 2;
}

/** Reads a /proc file of NUL-separated strings (size 0 in fstat) with libc. */
function readProc(path: string): Uint8Array<ArrayBuffer> {
  const fd = libc.open(new TextEncoder().encode(`${path}\0`), 0o2000000, 0); // O_RDONLY|O_CLOEXEC
  if (fd < 0) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const buf = new Uint8Array(65536);
    const n = Number(libc.read(fd, buf, BigInt(buf.length)));
    if (n <= 0) break;
    chunks.push(buf.subarray(0, n));
    total += n;
  }
  libc.close(fd);
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** A NULL-terminated char*[] over a NUL-separated list (the buffers must stay alive). */
function pointerArray(list: Uint8Array<ArrayBuffer>, keep: unknown[]): Uint8Array<ArrayBuffer> {
  const ptrs: bigint[] = [];
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] !== 0) continue;
    const s = list.slice(start, i + 1);
    keep.push(s);
    ptrs.push(pointer(s));
    start = i + 1;
  }
  const arr = new BigUint64Array(ptrs.length + 1);
  ptrs.forEach((p, i) => arr[i] = p);
  return new Uint8Array(arr.buffer);
}

/**
 * execve(/proc/self/exe) with this process's arguments and environment: a
 * fresh image that inherits SIGUSR1 ignored and the seccomp filter.
 */
function reexecute(): void {
  const keep: unknown[] = [];
  const argv = pointerArray(readProc("/proc/self/cmdline"), keep);
  const envp = pointerArray(readProc("/proc/self/environ"), keep);
  if (argv.length <= 8) return; // no arguments to run again
  libc.execve(new TextEncoder().encode("/proc/self/exe\0"), argv, envp);
}
