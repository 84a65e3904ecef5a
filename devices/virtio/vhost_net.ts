/**
 * virtio-net with the kernel's data path (linux/vhost.h): /dev/vhost-net
 * moves frames between the tap and the guest's rings itself. At DRIVER_OK
 * the device hands vhost the guest memory table, the negotiated ring
 * features, each ring's size, base and host addresses, the queue's KVM
 * ioeventfd as its kick (taken from the loop through
 * `VirtioContext.detachNotify`), a call eventfd, and the tap as backend.
 *
 * Interrupts: with MSI-X on and a vector assigned to the queue at
 * DRIVER_OK, vhost signals that vector's irqfd itself (KVM injects, no
 * thread of ours wakes). It follows the guest's masking without help from
 * here: while the vector (or the whole function) is masked, the VMM keeps
 * the irqfd disarmed in KVM, so vhost's signals wait in the eventfd, set
 * the pending bit the guest reads in the PBA, and arrive once on unmask
 * (`MsixHooks.vectorGate` in devices/pci/msix.ts; `vhost_net_mask_test.ts`).
 * Otherwise (INTx) vhost signals a call eventfd the owning loop reads, and
 * the loop raises the interrupt through the transport. Offloads are the
 * tap's (TUNSETOFFLOAD, as on the TypeScript path). Every ioctl number and
 * struct is checked against the headers by `vhost_net_test.ts`.
 *
 * @module
 */
import { libc } from "../../sys/libc.ts";
import { errno, ErrnoError } from "../../sys/errno.ts";
import { closeFd, cstring, eventFd, eventFdDrain, eventFdWrite, O_RDWR } from "../../sys/fd.ts";
import { type Tap, TUN_F_CSUM, TUN_F_UFO } from "../../sys/tun.ts";
import type { EventLoop } from "../../mainloop/types.ts";
import {
  featureBit,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from "./constants.ts";
import type { VirtioContext, VirtioDevice } from "./device.ts";
import { VIRTIO_ID_NET, VIRTIO_NET_CFG_SIZE, VIRTIO_NET_F_MRG_RXBUF } from "./net_constants.ts";
import { initNetConfig, netDeviceFeatures, offloadsFor } from "./net_features.ts";
import { VHOST_NET_PATH } from "./nic_open.ts";

export { vhostNetAvailable } from "./nic_open.ts";

/** _IOR(0xAF, 0x00, __u64). */
export const VHOST_GET_FEATURES = 0x8008af00;
/** _IOW(0xAF, 0x00, __u64). */
export const VHOST_SET_FEATURES = 0x4008af00;
/** _IO(0xAF, 0x01). */
export const VHOST_SET_OWNER = 0xaf01;
/** _IOW(0xAF, 0x03, struct vhost_memory). */
export const VHOST_SET_MEM_TABLE = 0x4008af03;
/** _IOW(0xAF, 0x10, struct vhost_vring_state). */
export const VHOST_SET_VRING_NUM = 0x4008af10;
/** _IOW(0xAF, 0x11, struct vhost_vring_addr). */
export const VHOST_SET_VRING_ADDR = 0x4028af11;
/** _IOW(0xAF, 0x12, struct vhost_vring_state). */
export const VHOST_SET_VRING_BASE = 0x4008af12;
/** _IOWR(0xAF, 0x12, struct vhost_vring_state). */
export const VHOST_GET_VRING_BASE = 0xc008af12;
/** _IOW(0xAF, 0x20, struct vhost_vring_file). */
export const VHOST_SET_VRING_KICK = 0x4008af20;
/** _IOW(0xAF, 0x21, struct vhost_vring_file). */
export const VHOST_SET_VRING_CALL = 0x4008af21;
/** _IOW(0xAF, 0x30, struct vhost_vring_file). */
export const VHOST_NET_SET_BACKEND = 0x4008af30;

/** sizeof(struct vhost_memory) (header before the regions). */
export const VHOST_MEMORY_SIZE = 8;
/** sizeof(struct vhost_memory_region). */
export const VHOST_MEMORY_REGION_SIZE = 32;
/** sizeof(struct vhost_vring_addr). */
export const VHOST_VRING_ADDR_SIZE = 40;

/** Names and values for the header probe. */
export const VHOST_ABI: Readonly<Record<string, number>> = {
  VHOST_GET_FEATURES,
  VHOST_SET_FEATURES,
  VHOST_SET_OWNER,
  VHOST_SET_MEM_TABLE,
  VHOST_SET_VRING_NUM,
  VHOST_SET_VRING_ADDR,
  VHOST_SET_VRING_BASE,
  VHOST_GET_VRING_BASE,
  VHOST_SET_VRING_KICK,
  VHOST_SET_VRING_CALL,
  VHOST_NET_SET_BACKEND,
  "sizeof(struct vhost_memory)": VHOST_MEMORY_SIZE,
  "sizeof(struct vhost_memory_region)": VHOST_MEMORY_REGION_SIZE,
  "sizeof(struct vhost_vring_addr)": VHOST_VRING_ADDR_SIZE,
  "offsetof(struct vhost_vring_addr, desc_user_addr)": 8,
  "offsetof(struct vhost_vring_addr, used_user_addr)": 16,
  "offsetof(struct vhost_vring_addr, avail_user_addr)": 24,
  "offsetof(struct vhost_memory_region, userspace_addr)": 16,
  "sizeof(struct vhost_vring_file)": 8,
  "sizeof(struct vhost_vring_state)": 8,
};

/**
 * The vhost-net character device as {@link VhostNet} drives it: one open
 * fd, owned by this process (VHOST_SET_OWNER). Tests pass a recorder.
 */
export interface VhostNetDev {
  /**
   * ioctl(2) with a struct argument, or none.
   *
   * @param name the ioctl's name, for the error
   * @param request its number
   * @param arg the struct (read back where the kernel fills it), or null
   * @throws ErrnoError named after `name`
   */
  ioctl(name: string, request: number, arg: Uint8Array | null): void;
  /** Closes the fd. */
  close(): void;
}

/**
 * Opens /dev/vhost-net.
 *
 * @returns the device
 * @throws ErrnoError when it does not open
 * @example
 * ```ts ignore
 * const net = new VhostNet({ tap, loop, mac, dev: openVhostNetDev() });
 * ```
 */
export function openVhostNetDev(): VhostNetDev {
  const fd = libc.open(cstring(VHOST_NET_PATH), O_RDWR | 0o2000000, 0);
  if (fd < 0) throw new ErrnoError(`open ${VHOST_NET_PATH}`, errno());
  return {
    ioctl(name: string, request: number, arg: Uint8Array | null): void {
      const r = arg
        ? libc.ioctl_buf(fd, BigInt(request), arg)
        : libc.ioctl_u64(fd, BigInt(request), 0n);
      if (r < 0) throw new ErrnoError(name, errno());
    },
    close(): void {
      closeFd(fd);
    },
  };
}

/** Options for {@link VhostNet}. */
export interface VhostNetOptions {
  /** The open tap (12-byte vnet header). */
  tap: Tap;
  /** The loop that owns the queues (reads the call eventfds). */
  loop: EventLoop;
  /** MAC address (6 bytes). */
  mac: Uint8Array;
  /** Queue size (default 256). */
  queueSize?: number;
  /** The vhost device (default: {@link openVhostNetDev}); closed by {@link VhostNet.close}. */
  dev?: VhostNetDev;
}

/**
 * virtio-net served by vhost-net.
 *
 * @example
 * ```ts ignore
 * const net = new VhostNet({ tap: openTap("tap0"), loop, mac });
 * ```
 */
export class VhostNet implements VirtioDevice {
  /** VIRTIO_ID_NET. */
  readonly deviceType = VIRTIO_ID_NET;
  /** processQueue starts no promise reactions: kicks are registered `sync`. */
  readonly syncQueues = true;
  /** RX and TX. */
  readonly numQueues = 2;
  /** Maximum queue size. */
  readonly queueMaxSize: number;
  /** Offered features (the net offloads plus what vhost supports of the ring ones). */
  readonly deviceFeatures: bigint;
  /** virtio_net_config. */
  readonly configSize = VIRTIO_NET_CFG_SIZE;
  /** Network, Ethernet. */
  readonly pciClass = 0x020000;
  readonly #tap: Tap;
  readonly #loop: EventLoop;
  readonly #mac: Uint8Array;
  readonly #dev: VhostNetDev;
  readonly #vhostFeatures: bigint;
  readonly #callFds: number[];
  readonly #ownKicks: number[];
  readonly #kickFds: number[] = [-1, -1];
  readonly #directCalls: boolean[] = [false, false];
  #ctx: VirtioContext | null = null;
  #running = false;

  /** @param options tap, loop, MAC */
  constructor(options: VhostNetOptions) {
    this.#tap = options.tap;
    this.#loop = options.loop;
    this.#mac = options.mac.slice();
    this.queueMaxSize = options.queueSize ?? 256;
    const dev = this.#dev = options.dev ?? openVhostNetDev();
    try {
      dev.ioctl("VHOST_SET_OWNER", VHOST_SET_OWNER, null);
      const f = new BigUint64Array(1);
      dev.ioctl("VHOST_GET_FEATURES", VHOST_GET_FEATURES, new Uint8Array(f.buffer));
      this.#vhostFeatures = f[0];
    } catch (e) {
      dev.close();
      throw e;
    }
    // Ring features vhost lacks are not offered; the net offloads are the tap's.
    const kernelBits = featureBit(VIRTIO_RING_F_EVENT_IDX) |
      featureBit(VIRTIO_RING_F_INDIRECT_DESC) | featureBit(VIRTIO_NET_F_MRG_RXBUF);
    this.deviceFeatures = netDeviceFeatures(this.#tap.supportsOffload(TUN_F_CSUM | TUN_F_UFO)) &
      ~(kernelBits & ~this.#vhostFeatures);
    this.#callFds = [eventFd(), eventFd()];
    this.#ownKicks = [eventFd(), eventFd()];
  }

  /** Per queue: whether vhost signals the guest's irqfd directly (MSI-X). */
  get directInterrupts(): readonly boolean[] {
    return this.#directCalls;
  }

  /** @param config MAC, link up, one pair */
  initConfig(config: Uint8Array): void {
    initNetConfig(config, this.#mac, true);
  }

  /** @param ctx queues and signalling; hands them to the kernel */
  activate(ctx: VirtioContext): void {
    const features = ctx.features;
    this.#tap.setOffload(offloadsFor(features));
    const f = new BigUint64Array([
      features & (this.#vhostFeatures | featureBit(VIRTIO_F_VERSION_1)),
    ]);
    this.#ioctl("VHOST_SET_FEATURES", VHOST_SET_FEATURES, new Uint8Array(f.buffer));
    this.#setMemTable(ctx);
    for (let q = 0; q < 2; q++) {
      const sq = ctx.queues[q];
      if (!sq) throw new RangeError(`virtio-net: queue ${q} is not enabled`);
      this.#vringState(VHOST_SET_VRING_NUM, q, sq.size);
      this.#vringState(VHOST_SET_VRING_BASE, q, sq.lastAvail);
      const a = new Uint8Array(VHOST_VRING_ADDR_SIZE);
      const v = new DataView(a.buffer);
      v.setUint32(0, q, true);
      v.setBigUint64(8, ctx.mem.hostAddress(sq.descAddr, 16 * sq.size), true);
      v.setBigUint64(16, ctx.mem.hostAddress(sq.usedAddr, 6 + 8 * sq.size), true);
      v.setBigUint64(24, ctx.mem.hostAddress(sq.availAddr, 6 + 2 * sq.size), true);
      this.#ioctl("VHOST_SET_VRING_ADDR", VHOST_SET_VRING_ADDR, a);
      const kick = this.#kickFds[q] >= 0
        ? this.#kickFds[q]
        : (ctx.detachNotify?.(q) ?? this.#ownKicks[q]);
      this.#kickFds[q] = kick;
      this.#vringFile(VHOST_SET_VRING_KICK, q, kick);
      // Straight to KVM (the vector's irqfd, disarmed while masked) under
      // MSI-X, else through the loop, which raises INTx like any device.
      const irqfd = ctx.queueIrqFd?.(q) ?? null;
      const call = irqfd ?? this.#callFds[q];
      this.#vringFile(VHOST_SET_VRING_CALL, q, call);
      if (irqfd === null) {
        this.#loop.setFdHandler(call, {
          read: () => {
            eventFdDrain(call);
            this.#ctx?.interruptQueue?.(q);
          },
          sync: true,
        });
      } else this.#loop.setFdHandler(this.#callFds[q], null);
      this.#directCalls[q] = irqfd !== null;
    }
    this.#ctx = ctx;
    for (let q = 0; q < 2; q++) this.#vringFile(VHOST_NET_SET_BACKEND, q, this.#tap.fd);
    this.#running = true;
    // Buffers the driver posted before DRIVER_OK reached the kernel.
    for (let q = 0; q < 2; q++) eventFdWrite(this.#kickFds[q]);
  }

  /** @param index a kick that came through the loop (no ioeventfd) */
  processQueue(index: number): void {
    const fd = this.#kickFds[index];
    if (this.#running && fd === this.#ownKicks[index]) eventFdWrite(fd);
  }

  /** @param drained called once vhost has let go of the rings */
  reset(drained: () => void): void {
    if (this.#running) {
      for (let q = 0; q < 2; q++) {
        this.#vringFile(VHOST_NET_SET_BACKEND, q, -1);
        // Stops the ring and waits for the worker (GET_VRING_BASE flushes it).
        this.#vringState(VHOST_GET_VRING_BASE, q, 0);
        this.#loop.setFdHandler(this.#callFds[q], null);
      }
    }
    this.#running = false;
    this.#ctx = null;
    try {
      this.#tap.setOffload(0);
    } catch {
      // Nothing to undo on a tap that refuses.
    }
    drained();
  }

  /** Closes the vhost fd and eventfds (after the last reset). */
  close(): void {
    this.#dev.close();
    for (const fd of [...this.#callFds, ...this.#ownKicks]) closeFd(fd);
  }

  #setMemTable(ctx: VirtioContext): void {
    const regions = ctx.mem.layout.regions;
    const b = new Uint8Array(VHOST_MEMORY_SIZE + VHOST_MEMORY_REGION_SIZE * regions.length);
    const v = new DataView(b.buffer);
    v.setUint32(0, regions.length, true);
    regions.forEach((r, i) => {
      const o = VHOST_MEMORY_SIZE + VHOST_MEMORY_REGION_SIZE * i;
      v.setBigUint64(o, BigInt(r.guestAddr), true);
      v.setBigUint64(o + 8, BigInt(r.size), true);
      v.setBigUint64(o + 16, r.hostAddr, true);
    });
    this.#ioctl("VHOST_SET_MEM_TABLE", VHOST_SET_MEM_TABLE, b);
  }

  #vringState(request: number, index: number, num: number): void {
    const s = new Uint32Array([index, num]);
    this.#ioctl("VHOST_VRING_STATE", request, new Uint8Array(s.buffer));
  }

  #vringFile(request: number, index: number, fd: number): void {
    const s = new Int32Array([index, fd]);
    this.#ioctl("VHOST_VRING_FILE", request, new Uint8Array(s.buffer));
  }

  #ioctl(name: string, request: number, arg: Uint8Array | null): void {
    this.#dev.ioctl(name, request, arg);
  }
}
