/**
 * TAP devices through /dev/net/tun (linux/if_tun.h): opening or creating a
 * tap with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, the virtio-net header
 * size, and the offloads the reader accepts. Every number here is checked
 * against the C headers by `tun_test.ts`.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { EACCES, EBUSY, EINVAL, ENODEV, ENOENT, EPERM, errno, ErrnoError } from "./errno.ts";
import { closeFd, cstring, O_NONBLOCK, O_RDWR } from "./fd.ts";

/** _IOW('T', 202, int): attach to (or create) an interface. */
export const TUNSETIFF = 0x400454ca;
/** _IOW('T', 203, int): keep the interface after the last fd closes. */
export const TUNSETPERSIST = 0x400454cb;
/** _IOR('T', 207, unsigned int): the IFF_* flags this kernel supports. */
export const TUNGETFEATURES = 0x800454cf;
/** _IOW('T', 208, unsigned int): offloads the reader can take (TUN_F_*). */
export const TUNSETOFFLOAD = 0x400454d0;
/** _IOR('T', 210, unsigned int): the attached interface's ifreq. */
export const TUNGETIFF = 0x800454d2;
/** _IOW('T', 212, int): the socket send buffer of the tap's queue. */
export const TUNSETSNDBUF = 0x400454d4;
/** _IOR('T', 215, int): the vnet header size. */
export const TUNGETVNETHDRSZ = 0x800454d7;
/** _IOW('T', 216, int): the vnet header size (10 or 12 bytes). */
export const TUNSETVNETHDRSZ = 0x400454d8;

/** An L3 tun device. */
export const IFF_TUN = 0x0001;
/** An L2 tap device. */
export const IFF_TAP = 0x0002;
/** No packet-information prefix. */
export const IFF_NO_PI = 0x1000;
/** Frames carry a virtio_net_hdr prefix. */
export const IFF_VNET_HDR = 0x4000;

/** Offload: the reader takes partial checksums. */
export const TUN_F_CSUM = 0x01;
/** Offload: the reader takes TCPv4 segmentation offload frames. */
export const TUN_F_TSO4 = 0x02;
/** Offload: the reader takes TCPv6 segmentation offload frames. */
export const TUN_F_TSO6 = 0x04;
/** Offload: the reader takes TSO frames with ECN. */
export const TUN_F_TSO_ECN = 0x08;
/** Offload: the reader takes UDP fragmentation offload frames. */
export const TUN_F_UFO = 0x10;

/** Longest interface name, NUL included. */
export const IFNAMSIZ = 16;
/** sizeof(struct ifreq). */
export const IFREQ_SIZE = 40;
/** offsetof(struct ifreq, ifr_flags). */
export const IFREQ_FLAGS = 16;

/** Everything above by its C name, for the header probe. */
export const TUN_ABI: Readonly<Record<string, number>> = {
  TUNSETIFF,
  TUNSETPERSIST,
  TUNGETFEATURES,
  TUNSETOFFLOAD,
  TUNGETIFF,
  TUNSETSNDBUF,
  TUNGETVNETHDRSZ,
  TUNSETVNETHDRSZ,
  IFF_TUN,
  IFF_TAP,
  IFF_NO_PI,
  IFF_VNET_HDR,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  TUN_F_UFO,
  IFNAMSIZ,
};

/** A tap the user asked for cannot be had (one line naming tap and cause). */
export class TapError extends Error {
  /** @param message one line: the tap and what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "TapError";
  }
}

/** An open tap, ready for frames with a 12-byte virtio_net_hdr_v1 prefix. */
export interface Tap {
  /** The tap file descriptor (non-blocking). */
  readonly fd: number;
  /** The interface name the kernel attached. */
  readonly name: string;
  /** Sets the offloads (TUN_F_*) the reader accepts. */
  setOffload(flags: number): void;
  /** Whether the kernel accepts `flags` as offloads (tries and restores none). */
  supportsOffload(flags: number): boolean;
  /** Makes the interface outlive this fd (or not): TUNSETPERSIST. */
  setPersist(on: boolean): void;
  /** Closes the fd (a tap the VMM created disappears, a persistent one stays). */
  close(): void;
}

const TAP_NAME = /^[A-Za-z0-9_.:-]{1,15}$/;

/**
 * Opens /dev/net/tun and attaches to tap `name`, creating it when it does
 * not exist and the process may (CAP_NET_ADMIN); sets an unlimited send
 * buffer (as QEMU) and a 12-byte virtio_net_hdr (virtio 1.x, num_buffers
 * included).
 *
 * @param name interface name (1..15 characters)
 * @param options `tunPath`: the clone device (default /dev/net/tun)
 * @returns the tap
 * @throws TapError with one line naming the tap and the cause
 * @example
 * ```ts ignore
 * const tap = openTap("tap0");
 * tap.setOffload(TUN_F_CSUM | TUN_F_TSO4);
 * ```
 */
export function openTap(name: string, options: { tunPath?: string } = {}): Tap {
  if (!TAP_NAME.test(name)) {
    throw new TapError(`Invalid tap name '${name}': 1 to 15 letters, digits or _.:-`);
  }
  const path = options.tunPath ?? "/dev/net/tun";
  const fd = libc.open(cstring(path), O_RDWR | O_NONBLOCK | 0o2000000, 0);
  if (fd < 0) {
    const e = errno();
    if (e === ENOENT || e === ENODEV) {
      throw new TapError(`Cannot open tap ${name}: ${path} does not exist (load the tun module)`);
    }
    if (e === EACCES || e === EPERM) {
      throw new TapError(`Cannot open tap ${name}: no permission to open ${path}`);
    }
    throw new TapError(`Cannot open tap ${name}: ${new ErrnoError(`open ${path}`, e).message}`);
  }
  try {
    const features = new Uint32Array(1);
    if (libc.ioctl_buf(fd, BigInt(TUNGETFEATURES), new Uint8Array(features.buffer)) === 0) {
      if (!(features[0] & IFF_VNET_HDR)) {
        throw new TapError(`Cannot open tap ${name}: the kernel's tun lacks IFF_VNET_HDR`);
      }
    }
    const ifr = new Uint8Array(IFREQ_SIZE);
    new TextEncoder().encodeInto(name, ifr.subarray(0, IFNAMSIZ - 1));
    new DataView(ifr.buffer).setUint16(IFREQ_FLAGS, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, true);
    if (libc.ioctl_buf(fd, BigInt(TUNSETIFF), ifr) < 0) {
      throw new TapError(tunSetIffError(name, errno()));
    }
    const attached = new TextDecoder().decode(ifr.subarray(0, ifr.indexOf(0)));
    const size = new Int32Array([12]);
    if (libc.ioctl_buf(fd, BigInt(TUNSETVNETHDRSZ), new Uint8Array(size.buffer)) < 0) {
      throw new TapError(
        `Cannot use tap ${name}: ${new ErrnoError("TUNSETVNETHDRSZ", errno()).message}`,
      );
    }
    // As QEMU (tap_set_sndbuf): an unlimited send buffer, so frames the
    // guest sends are not held back by the socket's default 208 KiB limit.
    size[0] = 0x7fff_ffff;
    if (libc.ioctl_buf(fd, BigInt(TUNSETSNDBUF), new Uint8Array(size.buffer)) < 0) {
      throw new TapError(
        `Cannot use tap ${name}: ${new ErrnoError("TUNSETSNDBUF", errno()).message}`,
      );
    }
    return new OpenTap(fd, attached || name);
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

function tunSetIffError(name: string, e: number): string {
  switch (e) {
    case EPERM:
      return `Cannot open tap ${name}: it does not exist and creating it needs CAP_NET_ADMIN, ` +
        `or it belongs to another user (create it with: ip tuntap add dev ${name} mode tap ` +
        `user $USER)`;
    case EBUSY:
      return `Cannot open tap ${name}: it is in use by another process`;
    case EINVAL:
      return `Cannot open tap ${name}: an interface of that name exists and is not a ` +
        `single-queue tap with vnet headers`;
    default:
      return `Cannot open tap ${name}: ${new ErrnoError("TUNSETIFF", e).message}`;
  }
}

class OpenTap implements Tap {
  readonly fd: number;
  readonly name: string;
  #closed = false;

  constructor(fd: number, name: string) {
    this.fd = fd;
    this.name = name;
  }

  setOffload(flags: number): void {
    if (libc.ioctl_u64(this.fd, BigInt(TUNSETOFFLOAD), BigInt(flags)) < 0) {
      throw new ErrnoError(`TUNSETOFFLOAD ${this.name}`, errno());
    }
  }

  setPersist(on: boolean): void {
    if (libc.ioctl_u64(this.fd, BigInt(TUNSETPERSIST), on ? 1n : 0n) < 0) {
      throw new ErrnoError(`TUNSETPERSIST ${this.name}`, errno());
    }
  }

  supportsOffload(flags: number): boolean {
    const ok = libc.ioctl_u64(this.fd, BigInt(TUNSETOFFLOAD), BigInt(flags)) === 0;
    libc.ioctl_u64(this.fd, BigInt(TUNSETOFFLOAD), 0n);
    return ok;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeFd(this.fd);
  }
}

/**
 * Wraps a tap fd opened elsewhere in this process (by {@link openTap} on the
 * main thread; fds are process-wide) for the thread that serves it.
 *
 * @param fd the tap file descriptor
 * @param name its interface name
 * @returns the tap (closing it closes the fd)
 * @example
 * ```ts ignore
 * const tap = adoptTap(args.tapFd, args.ifname);
 * ```
 */
export function adoptTap(fd: number, name: string): Tap {
  return new OpenTap(fd, name);
}
