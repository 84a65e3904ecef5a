/**
 * Stream sockets through libc: TCP (IPv4 and IPv6 literals) and Unix-domain
 * listeners, non-blocking accept, send and receive. The VMM runs with
 * `--allow-ffi` only, so it never uses `Deno.listen`; these fds go to the
 * main loop's `setFdHandler` like any other.
 *
 * Every socket is created non-blocking and close-on-exec. Sends use
 * MSG_NOSIGNAL, so a peer that went away yields EPIPE, never SIGPIPE.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { errno, ErrnoError } from "./errno.ts";
import { closeFd, cstring } from "./fd.ts";

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const MSG_NOSIGNAL = 0x4000;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EINTR = 4;
const EINPROGRESS = 115;

/** shutdown(2) how: both directions. */
export const SHUT_RDWR = 2;

/** A socket address: an IP literal and port, or a Unix socket path. */
export type SocketAddress = { host: string; port: number } | { path: string };

function parseIpv4(host: string): Uint8Array | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  return b.every((x) => x <= 255) ? new Uint8Array(b) : undefined;
}

function parseIpv6(host: string): Uint8Array | undefined {
  const h = host.replace(/^\[|\]$/g, "");
  if (!/^[0-9a-fA-F:]+$/.test(h) || !h.includes(":")) return undefined;
  const halves = h.split("::");
  if (halves.length > 2) return undefined;
  const part = (s: string) => (s === "" ? [] : s.split(":"));
  const head = part(halves[0]), tail = halves.length === 2 ? part(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return undefined;
  const groups = [...head, ...new Array(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(groups[i])) return undefined;
    const v = parseInt(groups[i], 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  }
  return out;
}

/**
 * Builds a struct sockaddr for an address.
 *
 * @param addr `{host, port}` with an IPv4/IPv6 literal or `localhost`, or `{path}`
 * @returns the family and the sockaddr bytes
 * @throws TypeError for a host name that is not a literal
 * @example
 * ```ts
 * import { sockaddr } from "./socket.ts";
 * console.log(sockaddr({ host: "127.0.0.1", port: 5900 }).family); // 2
 * ```
 */
export function sockaddr(addr: SocketAddress): { family: number; bytes: Uint8Array<ArrayBuffer> } {
  if ("path" in addr) {
    const p = cstring(addr.path);
    if (p.length > 108) throw new RangeError(`Socket path too long: ${addr.path}`);
    const b = new Uint8Array(110);
    new DataView(b.buffer).setUint16(0, AF_UNIX, true);
    b.set(p, 2);
    return { family: AF_UNIX, bytes: b };
  }
  const { port } = addr;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Invalid port ${port}`);
  }
  const host = addr.host === "localhost" ? "127.0.0.1" : addr.host;
  const v4 = parseIpv4(host);
  if (v4) {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setUint16(0, AF_INET, true);
    v.setUint16(2, port, false);
    b.set(v4, 4);
    return { family: AF_INET, bytes: b };
  }
  const v6 = parseIpv6(host);
  if (v6) {
    const b = new Uint8Array(28);
    const v = new DataView(b.buffer);
    v.setUint16(0, AF_INET6, true);
    v.setUint16(2, port, false);
    b.set(v6, 8);
    return { family: AF_INET6, bytes: b };
  }
  throw new TypeError(`Not an IP address: '${addr.host}' (use a numeric address)`);
}

function describe(addr: SocketAddress): string {
  return "path" in addr ? addr.path : `${addr.host}:${addr.port}`;
}

/**
 * A listening, non-blocking stream socket.
 *
 * @param addr where to listen; an existing Unix socket path is not replaced
 * @param options backlog (default 16)
 * @returns the listening fd
 * @throws ErrnoError ("bind 127.0.0.1:5900: EADDRINUSE")
 * @example
 * ```ts
 * import { listenSocket, localPort } from "./socket.ts";
 * import { closeFd } from "./fd.ts";
 * const fd = listenSocket({ host: "127.0.0.1", port: 0 });
 * console.log(localPort(fd) > 0);
 * closeFd(fd);
 * ```
 */
export function listenSocket(addr: SocketAddress, options: { backlog?: number } = {}): number {
  const { family, bytes } = sockaddr(addr);
  const fd = libc.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new ErrnoError("socket", errno());
  try {
    if (family !== AF_UNIX) setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    // listen taken before bind: its first use would bind it (a dlopen) while a
    // client could already find the address and be refused.
    const { listen } = libc;
    if (libc.bind(fd, bytes, bytes.length) < 0) {
      throw new ErrnoError(`bind ${describe(addr)}`, errno());
    }
    if (listen(fd, options.backlog ?? 16) < 0) {
      throw new ErrnoError(`listen ${describe(addr)}`, errno());
    }
    return fd;
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

/**
 * Starts a non-blocking connect (for tests and clients): the fd becomes
 * writable when connected.
 *
 * @param addr the peer
 * @returns the socket fd
 * @example
 * ```ts ignore
 * const fd = connectSocket({ host: "127.0.0.1", port: 5900 });
 * ```
 */
export function connectSocket(addr: SocketAddress): number {
  const { family, bytes } = sockaddr(addr);
  const fd = libc.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new ErrnoError("socket", errno());
  if (libc.connect(fd, bytes, bytes.length) < 0 && errno() !== EINPROGRESS) {
    const e = errno();
    closeFd(fd);
    throw new ErrnoError(`connect ${describe(addr)}`, e);
  }
  return fd;
}

function setIntOption(fd: number, level: number, name: number, value: number): void {
  const v = new Int32Array([value]);
  if (libc.setsockopt(fd, level, name, new Uint8Array(v.buffer), 4) < 0) {
    throw new ErrnoError("setsockopt", errno());
  }
}

/**
 * Turns off Nagle's algorithm on a TCP socket (small protocol replies go out at once).
 *
 * @param fd a TCP socket
 */
export function setNoDelay(fd: number): void {
  const v = new Int32Array([1]);
  libc.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, new Uint8Array(v.buffer), 4);
}

const acceptAddr = new Uint8Array(128);
const acceptLen = new Uint32Array(1);

/**
 * Accepts one pending connection, non-blocking and close-on-exec.
 *
 * @param fd a listening socket
 * @returns the connection's fd, or -1 when none is pending
 * @throws ErrnoError for failures other than EAGAIN/EINTR
 */
export function acceptSocket(fd: number): number {
  acceptLen[0] = acceptAddr.length;
  const c = libc.accept4(
    fd,
    acceptAddr,
    new Uint8Array(acceptLen.buffer),
    SOCK_NONBLOCK | SOCK_CLOEXEC,
  );
  if (c >= 0) return c;
  const e = errno();
  if (e === EAGAIN || e === EINTR) return -1;
  throw new ErrnoError("accept4", e);
}

/**
 * The local port a TCP socket is bound to (after binding port 0).
 *
 * @param fd a bound socket
 * @returns the port
 */
export function localPort(fd: number): number {
  const b = new Uint8Array(128);
  const len = new Uint32Array([b.length]);
  if (libc.getsockname(fd, b, new Uint8Array(len.buffer)) < 0) {
    throw new ErrnoError("getsockname", errno());
  }
  return new DataView(b.buffer).getUint16(2, false);
}

/**
 * Sends without blocking.
 *
 * @param fd a connected socket
 * @param data bytes to send
 * @returns bytes sent (possibly fewer), 0 when the socket buffer is full, or -errno
 */
export function sendSome(fd: number, data: Uint8Array<ArrayBuffer>): number {
  for (;;) {
    const n = Number(libc.send(fd, data, BigInt(data.length), MSG_NOSIGNAL | MSG_DONTWAIT));
    if (n >= 0) return n;
    const e = errno();
    if (e === EINTR) continue;
    return e === EAGAIN ? 0 : -e;
  }
}

/**
 * Receives without blocking.
 *
 * @param fd a connected socket
 * @param buf destination
 * @returns bytes received, 0 at end of stream, -EAGAIN when nothing is there, or -errno
 */
export function recvSome(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  for (;;) {
    const n = Number(libc.recv(fd, buf, BigInt(buf.length), MSG_DONTWAIT));
    if (n >= 0) return n;
    const e = errno();
    if (e !== EINTR) return -e;
  }
}

/**
 * Shuts a socket down in both directions (the fd stays open).
 *
 * @param fd a socket
 */
export function shutdownSocket(fd: number): void {
  libc.shutdown(fd, SHUT_RDWR);
}

/**
 * Removes a file (a stale Unix socket).
 *
 * @param path the path
 * @returns 0, or -errno
 */
export function unlinkPath(path: string): number {
  return libc.unlink(cstring(path)) < 0 ? -errno() : 0;
}
