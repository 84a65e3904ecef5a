/**
 * Unix-domain stream sockets over libc: listen on a path, accept, connect,
 * non-blocking send and receive. The VMM's control sockets (QMP, VNC) use
 * these instead of `Deno.listen`, so they need `--allow-ffi` only, and their
 * fds go straight into the main loop's `setFdHandler`.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { check, EAGAIN, EINTR, ENOENT, errno, ErrnoError } from "./errno.ts";
import { closeFd, cstring } from "./fd.ts";

/** Address family of Unix-domain sockets. */
export const AF_UNIX = 1;
/** Stream sockets. */
export const SOCK_STREAM = 1;
/** Non-blocking (socket/accept4 flag). */
export const SOCK_NONBLOCK = 0o4000;
/** Close on exec (socket/accept4 flag). */
export const SOCK_CLOEXEC = 0o2000000;
/** send(2): no SIGPIPE when the peer has gone; EPIPE instead. */
export const MSG_NOSIGNAL = 0x4000;
/** send(2): do not block even on a blocking socket. */
export const MSG_DONTWAIT = 0x40;
/** shutdown(2): stop both directions. */
export const SHUT_RDWR = 2;

const ECONNREFUSED = 111;
const SUN_PATH_MAX = 108;
const SYS_newfstatat = 262n;
const AT_FDCWD = -100n;
const AT_SYMLINK_NOFOLLOW = 0x100n;
const S_IFMT = 0o170000;
const S_IFSOCK = 0o140000;

/** A socket path the VMM refuses to use (one line naming why). */
export class SocketPathError extends Error {
  /** @param message what is wrong with the path */
  constructor(message: string) {
    super(message);
    this.name = "SocketPathError";
  }
}

/**
 * A `struct sockaddr_un` for a path.
 *
 * @param path the socket path (at most 107 bytes)
 * @returns the address bytes and their length for bind/connect
 * @throws SocketPathError when the path is empty or too long
 * @example
 * ```ts
 * import { sockaddrUn } from "./socket.ts";
 * const { addr, len } = sockaddrUn("/tmp/x.sock");
 * console.log(addr[0], len); // 1 (AF_UNIX) 14
 * ```
 */
export function sockaddrUn(path: string): { addr: Uint8Array<ArrayBuffer>; len: number } {
  const p = cstring(path);
  if (p.length === 1) throw new SocketPathError("socket path is empty");
  if (p.length > SUN_PATH_MAX) {
    throw new SocketPathError(
      `socket path '${path}' is too long (${p.length - 1} bytes, at most ${SUN_PATH_MAX - 1})`,
    );
  }
  const addr = new Uint8Array(2 + SUN_PATH_MAX);
  addr[0] = AF_UNIX;
  addr.set(p, 2);
  return { addr, len: 2 + p.length };
}

/** What is at a path where a socket should be created. */
export type SocketPathState = "absent" | "stale-socket" | "live-socket" | "not-socket";

function lstatMode(path: string): number | undefined {
  const st = new Uint8Array(144);
  const p = cstring(path);
  const r = libc.syscall(
    SYS_newfstatat,
    AT_FDCWD,
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(p))),
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(st))),
    AT_SYMLINK_NOFOLLOW,
    0n,
    0n,
  );
  if (r < 0n) {
    const e = errno();
    if (e === ENOENT) return undefined;
    throw new ErrnoError(`stat ${path}`, e);
  }
  return new DataView(st.buffer).getUint32(24, true);
}

/**
 * Looks at a path: nothing there, a socket nobody listens on (left by a
 * process that died), a socket in use, or something else.
 *
 * @param path the path
 * @returns its state
 * @example
 * ```ts
 * import { socketPathState } from "./socket.ts";
 * console.log(socketPathState("/nonexistent/x.sock")); // "absent"
 * ```
 */
export function socketPathState(path: string): SocketPathState {
  const mode = lstatMode(path);
  if (mode === undefined) return "absent";
  if ((mode & S_IFMT) !== S_IFSOCK) return "not-socket";
  const { addr, len } = sockaddrUn(path);
  const fd = check("socket", libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  try {
    if (libc.connect(fd, addr, len) === 0) return "live-socket";
    const e = errno();
    return e === ECONNREFUSED || e === ENOENT ? "stale-socket" : "live-socket";
  } finally {
    closeFd(fd);
  }
}

/** Options for {@link unixListen}. */
export interface UnixListenOptions {
  /** Permission bits of the socket file (default 0o600: only this user). */
  mode?: number;
  /** listen(2) backlog (default 4). */
  backlog?: number;
}

/**
 * Creates a non-blocking listening Unix socket at a path. A stale socket left
 * there (nobody listening) is replaced; a live socket or any other file is
 * refused. The file is created with `mode` from the start (umask during
 * bind), so there is no moment when others could connect.
 *
 * @param path where to listen
 * @param options mode and backlog
 * @returns the listening fd (non-blocking, close-on-exec)
 * @throws SocketPathError for a path in use or not a socket; ErrnoError otherwise
 * @example
 * ```ts
 * import { unixListen } from "./socket.ts";
 * import { closeFd } from "./fd.ts";
 * const path = Deno.makeTempDirSync() + "/qmp.sock";
 * const fd = unixListen(path);
 * closeFd(fd);
 * ```
 */
export function unixListen(path: string, options: UnixListenOptions = {}): number {
  const mode = options.mode ?? 0o600;
  const { addr, len } = sockaddrUn(path);
  const state = socketPathState(path);
  if (state === "not-socket") {
    throw new SocketPathError(`'${path}' exists and is not a socket; not replacing it`);
  }
  if (state === "live-socket") {
    throw new SocketPathError(`'${path}' is a socket in use by another process`);
  }
  if (state === "stale-socket") check(`unlink ${path}`, libc.unlink(cstring(path)));
  const fd = check(
    "socket",
    libc.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
  );
  try {
    // A client that finds the path between bind and listen is refused, so
    // nothing may sit between them: libc binds each function on its first
    // use (a dlopen, milliseconds under an emulator), hence taken first.
    const { bind, listen } = libc;
    errno(); // and errno's own function
    const old = libc.umask(~mode & 0o777);
    const r = bind(fd, addr, len);
    const l = r < 0 ? -1 : listen(fd, options.backlog ?? 4);
    const err = errno();
    libc.umask(old);
    if (r < 0) throw new ErrnoError(`bind ${path}`, err);
    if (l < 0) throw new ErrnoError("listen", err);
    check(`chmod ${path}`, libc.chmod(cstring(path), mode));
    return fd;
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

/**
 * Accepts one pending connection.
 *
 * @param listenFd a listening socket
 * @returns the new connection (non-blocking, close-on-exec), or -1 when none is pending
 * @example
 * ```ts ignore
 * const conn = acceptConnection(listenFd);
 * if (conn >= 0) loop.setFdHandler(conn, { read: onRead });
 * ```
 */
export function acceptConnection(listenFd: number): number {
  for (;;) {
    const fd = libc.accept4(listenFd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return fd;
    const e = errno();
    if (e === EINTR) continue;
    if (e === EAGAIN || e === ECONNREFUSED) return -1;
    // ECONNABORTED and friends: that client is gone; others stay pending.
    if (e === 103) continue;
    throw new ErrnoError("accept4", e);
  }
}

/**
 * Connects to a Unix socket (clients and tests).
 *
 * @param path the socket path
 * @param options `nonblock` makes the connected fd non-blocking
 * @returns the connected fd (close-on-exec)
 * @example
 * ```ts ignore
 * const fd = unixConnect("/run/vm/qmp.sock");
 * ```
 */
export function unixConnect(path: string, options: { nonblock?: boolean } = {}): number {
  const { addr, len } = sockaddrUn(path);
  const flags = SOCK_STREAM | SOCK_CLOEXEC | (options.nonblock ? SOCK_NONBLOCK : 0);
  const fd = check("socket", libc.socket(AF_UNIX, flags, 0));
  if (libc.connect(fd, addr, len) < 0) {
    const e = errno();
    closeFd(fd);
    throw new ErrnoError(`connect ${path}`, e);
  }
  return fd;
}

/**
 * Sends bytes without blocking and without SIGPIPE.
 *
 * @param fd a connected socket
 * @param data the bytes
 * @returns bytes sent (maybe fewer), or -1 when the socket buffer is full
 * @throws ErrnoError when the peer has gone (EPIPE, ECONNRESET)
 * @example
 * ```ts ignore
 * const n = socketSend(fd, new TextEncoder().encode("{}\r\n"));
 * ```
 */
export function socketSend(fd: number, data: Uint8Array<ArrayBuffer>): number {
  for (;;) {
    const n = Number(libc.send(fd, data, BigInt(data.byteLength), MSG_NOSIGNAL | MSG_DONTWAIT));
    if (n >= 0) return n;
    const e = errno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return -1;
    throw new ErrnoError("send", e);
  }
}

/**
 * Receives what is there without blocking (on a non-blocking socket).
 *
 * @param fd a connected socket
 * @param buf where to put it
 * @returns bytes read, 0 at end of stream, -1 when nothing is there yet
 * @throws ErrnoError when the connection failed (ECONNRESET)
 * @example
 * ```ts ignore
 * const n = socketRecv(fd, buf);
 * ```
 */
export function socketRecv(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  for (;;) {
    const n = Number(libc.read(fd, buf, BigInt(buf.byteLength)));
    if (n >= 0) return n;
    const e = errno();
    if (e === EINTR) continue;
    if (e === EAGAIN) return -1;
    throw new ErrnoError("read", e);
  }
}

/**
 * Removes a socket file this process created (ignores a missing one).
 *
 * @param path the socket path
 * @example
 * ```ts ignore
 * removeSocketFile("/run/vm/qmp.sock");
 * ```
 */
export function removeSocketFile(path: string): void {
  if (libc.unlink(cstring(path)) < 0 && errno() !== ENOENT) {
    throw new ErrnoError(`unlink ${path}`, errno());
  }
}
