/**
 * virtio-net (virtio spec 5.1) on a tap device: queue 0 receives, queue 1
 * transmits. Frames keep the 12-byte virtio_net_hdr_v1 prefix end to end,
 * so checksum and segmentation offloads pass between the guest and the
 * host kernel untouched (TUNSETOFFLOAD mirrors the GUEST_* features the
 * driver accepted).
 *
 * - RX: the tap fd's read handler on the owning loop reads a frame into a
 *   host buffer and copies it into one chain, or with MRG_RXBUF into as
 *   many chains as it needs, published together. With no buffer to take
 *   the next frame the handler is dropped (the tap queues, then the host
 *   kernel drops and counts) until the driver kicks the RX queue.
 * - TX: the queue's ioeventfd kick writes each chain with writev straight
 *   from guest RAM, a bounded batch per turn; EAGAIN waits for the tap to
 *   become writable.
 *
 * Frames the device cannot pass on are counted in {@link NetStats}; guest
 * chains that break the spec mark the device broken.
 *
 * @module
 */
import { libc, memcpyHost } from "../../sys/libc.ts";
import { EAGAIN, EINTR, errno } from "../../sys/errno.ts";
import type { Tap } from "../../sys/tun.ts";
import { TUN_F_CSUM, TUN_F_UFO } from "../../sys/tun.ts";
import type { Bh, EventLoop } from "../../mainloop/types.ts";
import { featureBit } from "./constants.ts";
import type { VirtioContext, VirtioDevice } from "./device.ts";
import { initNetConfig, netDeviceFeatures, offloadsFor } from "./net_features.ts";
export { initNetConfig, netDeviceFeatures, offloadsFor } from "./net_features.ts";
import { DescriptorChain, type SplitQueue, VirtqueueError } from "./queue.ts";
import { GuestRamMap } from "./net_ram_map.ts";
import {
  VIRTIO_ID_NET,
  VIRTIO_NET_CFG_SIZE,
  VIRTIO_NET_CFG_STATUS,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_HOST_ECN,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_HOST_UFO,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_NUM_BUFFERS,
  VIRTIO_NET_HDR_SIZE,
  VIRTIO_NET_MAX_FRAME,
  VIRTIO_NET_S_LINK_UP,
} from "./net_constants.ts";

/** Receive queue index. */
export const NET_RX_QUEUE = 0;
/** Transmit queue index. */
export const NET_TX_QUEUE = 1;
/** Most frames moved per loop turn and direction before yielding. */
export const NET_BATCH = 64;

/** Counters of one virtio-net device; every frame not delivered lands in one. */
export interface NetStats {
  /** Frames delivered to the guest. */
  rxPackets: number;
  /** Their bytes (without the virtio header). */
  rxBytes: number;
  /** Frames read from the tap and dropped (too large for the buffers, link down). */
  rxDropped: number;
  /** Times RX stopped reading the tap for lack of guest buffers. */
  rxStalls: number;
  /** Frames the guest sent that reached the tap. */
  txPackets: number;
  /** Their bytes (without the virtio header). */
  txBytes: number;
  /** Guest frames dropped (oversized, link down, or refused by the tap). */
  txDropped: number;
}

/** Options for {@link VirtioNet}. */
export interface VirtioNetOptions {
  /** The open tap (12-byte vnet header). */
  tap: Tap;
  /** The loop that owns the queues; the tap fd is served there. */
  loop: EventLoop;
  /** MAC address (6 bytes). */
  mac: Uint8Array;
  /** Queue size (power of two, default 256). */
  queueSize?: number;
  /** Offer UFO (default: whether the tap accepts TUN_F_UFO). */
  ufo?: boolean;
}

const IOV_BYTES = 16;
const RX_BUF_BYTES = VIRTIO_NET_HDR_SIZE + VIRTIO_NET_MAX_FRAME;
const RX_BUF_BIG = BigInt(RX_BUF_BYTES);
const TWO_32 = 0x1_0000_0000;

/**
 * The virtio-net device model.
 *
 * @example
 * ```ts ignore
 * const net = new VirtioNet({ tap: openTap("tap0"), loop, mac: parseMac("52:54:00:12:34:56") });
 * const transport = new VirtioPciDevice(virtioPciSpecOf(net));
 * ```
 */
export class VirtioNet implements VirtioDevice {
  /** VIRTIO_ID_NET. */
  readonly deviceType = VIRTIO_ID_NET;
  /** One RX and one TX queue. */
  readonly numQueues = 2;
  /** Maximum queue size. */
  readonly queueMaxSize: number;
  /** Offered features. */
  readonly deviceFeatures: bigint;
  /** mac, status, max_virtqueue_pairs, mtu. */
  readonly configSize = VIRTIO_NET_CFG_SIZE;
  /** PCI class: network, Ethernet. */
  readonly pciClass = 0x020000;
  /** Frame counters (read them any time on the loop thread). */
  readonly stats: NetStats = {
    rxPackets: 0,
    rxBytes: 0,
    rxDropped: 0,
    rxStalls: 0,
    txPackets: 0,
    txBytes: 0,
    txDropped: 0,
  };
  readonly #tap: Tap;
  readonly #loop: EventLoop;
  readonly #mac: Uint8Array;
  readonly #chain: DescriptorChain;
  readonly #rxBuf = new Uint8Array(RX_BUF_BYTES);
  /** Host address of #rxBuf (its backing store lives outside the JS heap and never moves). */
  readonly #rxBase = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#rxBuf)));
  /** Guest RAM regions as plain numbers, for host addresses without BigInt per packet. */
  readonly #ram = new GuestRamMap();
  readonly #iov: Uint8Array;
  readonly #iovView: DataView;
  readonly #heads: Uint32Array;
  readonly #lens: Uint32Array;
  readonly #txBh: Bh;
  #config: Uint8Array | null = null;
  #ctx: VirtioContext | null = null;
  #rxq: SplitQueue | null = null;
  #txq: SplitQueue | null = null;
  #linkUp = true;
  #mergeable = false;
  #guestCsum = false;
  #txAllowed = 0;
  /** Bytes of a frame read from the tap and not yet delivered (0: none). */
  #rxPending = 0;
  #reading = false;
  #txWaitWritable = false;
  #inTx = false;
  readonly #onReadable = () => this.#receive();
  readonly #onWritable = () => {
    this.#txWaitWritable = false;
    this.#syncFdHandler();
    this.processQueue(NET_TX_QUEUE);
  };

  /** @param options tap, loop, MAC, queue size */
  constructor(options: VirtioNetOptions) {
    if (options.mac.length !== 6) throw new RangeError("A MAC address has 6 bytes");
    this.#tap = options.tap;
    this.#loop = options.loop;
    this.#mac = options.mac.slice();
    this.queueMaxSize = options.queueSize ?? 256;
    this.#chain = new DescriptorChain(this.queueMaxSize);
    this.#iov = new Uint8Array(IOV_BYTES * this.queueMaxSize);
    this.#iovView = new DataView(this.#iov.buffer);
    this.#heads = new Uint32Array(this.queueMaxSize);
    this.#lens = new Uint32Array(this.queueMaxSize);
    this.#txBh = options.loop.bh(() => this.processQueue(NET_TX_QUEUE), "virtio-net-tx");
    this.deviceFeatures = netDeviceFeatures(
      options.ufo ?? this.#tap.supportsOffload(TUN_F_CSUM | TUN_F_UFO),
    );
  }

  /** The tap this device serves. */
  get tap(): Tap {
    return this.#tap;
  }

  /** Whether the link is up (config status). */
  get linkUp(): boolean {
    return this.#linkUp;
  }

  /** The offloads currently set on the tap (TUN_F_*), from the accepted features. */
  get tapOffloads(): number {
    return this.#ctx ? offloadsFor(this.#ctx.features) : 0;
  }

  /** @param config the device configuration bytes to fill (kept for link changes) */
  initConfig(config: Uint8Array): void {
    this.#config = config;
    initNetConfig(config, this.#mac, this.#linkUp);
  }

  /** @param ctx queues and signalling from the transport */
  activate(ctx: VirtioContext): void {
    const f = ctx.features;
    const has = (bit: number) => (f & featureBit(bit)) !== 0n;
    this.#mergeable = has(VIRTIO_NET_F_MRG_RXBUF);
    this.#guestCsum = has(VIRTIO_NET_F_GUEST_CSUM);
    this.#txAllowed = (has(VIRTIO_NET_F_HOST_TSO4) ? 1 << VIRTIO_NET_HDR_GSO_TCPV4 : 0) |
      (has(VIRTIO_NET_F_HOST_TSO6) ? 1 << VIRTIO_NET_HDR_GSO_TCPV6 : 0) |
      (has(VIRTIO_NET_F_HOST_UFO) ? 1 << VIRTIO_NET_HDR_GSO_UDP : 0) |
      (has(VIRTIO_NET_F_HOST_ECN) ? 1 << 7 : 0) | (has(VIRTIO_NET_F_CSUM) ? 1 << 8 : 0);
    this.#tap.setOffload(offloadsFor(f));
    this.#ram.load(ctx.mem);
    this.#ctx = ctx;
    this.#rxq = ctx.queues[NET_RX_QUEUE] ?? null;
    this.#txq = ctx.queues[NET_TX_QUEUE] ?? null;
    this.#reading = this.#rxq !== null && this.#linkUp;
    this.#syncFdHandler();
  }

  /**
   * Stops serving the queues and forgets a frame held for RX.
   *
   * @param drained called at once: no request outlives this call
   */
  reset(drained: () => void): void {
    this.#ctx = null;
    this.#rxq = null;
    this.#txq = null;
    this.#rxPending = 0;
    this.#reading = false;
    this.#txWaitWritable = false;
    this.#txBh.cancel();
    this.#syncFdHandler();
    try {
      this.#tap.setOffload(0);
    } catch {
      // A tap that refuses now refused at activation too; nothing to undo.
    }
    drained();
  }

  /**
   * Sets the link status in the config and tells the driver. While down,
   * the tap is not read and transmitted frames are dropped (counted).
   *
   * @param up whether the link is up
   */
  setLink(up: boolean): void {
    if (up === this.#linkUp) return;
    this.#linkUp = up;
    const c = this.#config;
    if (c) c[VIRTIO_NET_CFG_STATUS] = up ? VIRTIO_NET_S_LINK_UP : 0;
    this.#reading = up && this.#rxq !== null;
    this.#syncFdHandler();
    this.#ctx?.signalConfig?.();
    if (up && this.#rxPending > 0) this.#receive();
  }

  /** @param index the kicked queue */
  processQueue(index: number): void {
    if (index === NET_RX_QUEUE) {
      // New RX buffers: resume reading the tap if it was stopped for them.
      if (!this.#reading && this.#rxq && this.#linkUp) {
        // Reading again: refills need no kick until the next stall.
        this.#rxq.disableNotification();
        this.#reading = true;
        this.#syncFdHandler();
        this.#receive();
      }
      return;
    }
    if (index === NET_TX_QUEUE) this.#transmit();
  }

  /** Registers the tap handlers the current state needs. */
  #syncFdHandler(): void {
    const read = this.#reading ? this.#onReadable : null;
    const write = this.#txWaitWritable ? this.#onWritable : null;
    this.#loop.setFdHandler(this.#tap.fd, read || write ? { read, write } : null);
  }

  /** Moves up to NET_BATCH frames from the tap into the RX queue. */
  #receive(): void {
    const q = this.#rxq;
    const ctx = this.#ctx;
    if (!q || !ctx || ctx.broken) return;
    let delivered = 0;
    try {
      while (delivered < NET_BATCH && this.#reading) {
        if (this.#rxPending === 0) {
          if (!this.#waitRx(q, 0)) break;
          const n = Number(libc.read(this.#tap.fd, this.#rxBuf, RX_BUF_BIG));
          if (n < 0) {
            const e = errno();
            if (e === EINTR) continue;
            if (e !== EAGAIN) this.stats.rxDropped++;
            break;
          }
          if (n <= VIRTIO_NET_HDR_SIZE) continue;
          this.#rxPending = n;
        }
        const have = q.pending();
        if (!this.#deliver(q, ctx)) {
          if (!this.#waitRx(q, have)) break;
          continue;
        }
        delivered++;
      }
    } catch (e) {
      this.#rxPending = 0;
      this.#reading = false;
      this.#syncFdHandler();
      ctx.markBroken(e instanceof Error ? e.message : String(e));
      return;
    }
    if (delivered > 0) ctx.signalUsed(NET_RX_QUEUE);
  }

  /**
   * Whether the RX queue holds more than `have` chains; if not, stops
   * reading the tap and asks the driver to kick when it adds one.
   */
  #waitRx(q: SplitQueue, have: number): boolean {
    if (q.pending() > have) return true;
    if (q.enableNotificationBeyond() > have) return true;
    this.#reading = false;
    this.stats.rxStalls++;
    this.#syncFdHandler();
    return false;
  }

  /**
   * Copies the pending frame into RX chains and publishes them. Returns
   * false (popping nothing) when the queue lacks the buffers; drops frames
   * that can never fit.
   */
  #deliver(q: SplitQueue, ctx: VirtioContext): boolean {
    const total = this.#rxPending;
    const buf = this.#rxBuf;
    const chain = this.#chain;
    const ram = this.#ram;
    const base = this.#rxBase;
    if (!this.#guestCsum) buf[0] = 0;
    let off = 0, used = 0, nbAddr0 = -1, nbAddr1 = -1;
    while (off < total) {
      if (!q.pop(chain)) {
        for (let i = 0; i < used; i++) q.undoPop();
        return false;
      }
      if (chain.readableCount !== 0) {
        throw new VirtqueueError("virtio-net: RX chain has device-readable descriptors");
      }
      if (used === 0 && chain.writableBytes < VIRTIO_NET_HDR_SIZE) {
        throw new VirtqueueError("virtio-net: RX buffer smaller than the virtio-net header");
      }
      const start = off;
      for (let i = 0; i < chain.count && off < total; i++) {
        const len = Math.min(chain.len[i], total - off);
        const addr = chain.addr[i];
        if (off <= VIRTIO_NET_HDR_NUM_BUFFERS && VIRTIO_NET_HDR_NUM_BUFFERS < off + len) {
          nbAddr0 = addr + VIRTIO_NET_HDR_NUM_BUFFERS - off;
        }
        if (off <= VIRTIO_NET_HDR_NUM_BUFFERS + 1 && VIRTIO_NET_HDR_NUM_BUFFERS + 1 < off + len) {
          nbAddr1 = addr + VIRTIO_NET_HDR_NUM_BUFFERS + 1 - off;
        }
        if (len > 0) memcpyHost(ram.host(addr, len), base + off, len);
        off += len;
      }
      this.#heads[used] = chain.head;
      this.#lens[used] = off - start;
      used++;
      if (off < total && (!this.#mergeable || used >= q.size)) {
        // It can never fit: give the buffers back untouched and count the drop.
        for (let i = 0; i < used; i++) q.undoPop();
        this.#rxPending = 0;
        this.stats.rxDropped++;
        return true;
      }
    }
    ctx.mem.writeU8(nbAddr0, used & 0xff);
    ctx.mem.writeU8(nbAddr1, used >> 8);
    for (let i = 0; i < used; i++) q.fillUsed(i, this.#heads[i], this.#lens[i]);
    q.flushUsed(used);
    this.#rxPending = 0;
    this.stats.rxPackets++;
    this.stats.rxBytes += total - VIRTIO_NET_HDR_SIZE;
    return true;
  }

  /** Writes up to NET_BATCH TX chains to the tap. */
  #transmit(): void {
    const q = this.#txq;
    const ctx = this.#ctx;
    if (!q || !ctx || this.#inTx || this.#txWaitWritable) return;
    this.#inTx = true;
    let sent = 0;
    try {
      for (;;) {
        q.disableNotification();
        while (sent < NET_BATCH && !ctx.broken && q.pop(this.#chain)) {
          if (!this.#sendChain(q, ctx)) {
            q.undoPop();
            this.#txWaitWritable = true;
            this.#syncFdHandler();
            return;
          }
          sent++;
        }
        if (ctx.broken) return;
        if (sent >= NET_BATCH) {
          // Yield to the loop; the BH continues where this left off.
          this.#txBh.schedule();
          return;
        }
        if (!q.enableNotification()) return;
      }
    } finally {
      this.#inTx = false;
      if (sent > 0 && !ctx.broken) ctx.signalUsed(NET_TX_QUEUE);
    }
  }

  /** Guest address of byte `at` of the popped TX chain's readable part. */
  #txByte(at: number): number {
    const c = this.#chain;
    for (let i = 0, pos = 0; i < c.readableCount; pos += c.len[i], i++) {
      if (at < pos + c.len[i]) return c.addr[i] + at - pos;
    }
    return -1; // never: the chain holds at least a header
  }

  /** Sends the popped chain; false when the tap is full (EAGAIN). */
  #sendChain(q: SplitQueue, ctx: VirtioContext): boolean {
    const c = this.#chain;
    const mem = ctx.mem;
    if (c.readableCount !== c.count) {
      throw new VirtqueueError("virtio-net: TX chain has device-writable descriptors");
    }
    if (c.readableBytes < VIRTIO_NET_HDR_SIZE) {
      throw new VirtqueueError("virtio-net: TX chain shorter than the virtio-net header");
    }
    // flags and gso_type: the header's first two bytes (possibly split).
    const whole = c.len[0] >= 2;
    const flags = mem.readU8(whole ? c.addr[0] : this.#txByte(0));
    const gsoType = mem.readU8(whole ? c.addr[0] + 1 : this.#txByte(1));
    const gso = gsoType & ~VIRTIO_NET_HDR_GSO_ECN;
    const allowed = this.#txAllowed;
    if (
      (gso !== VIRTIO_NET_HDR_GSO_NONE && (gso > 8 || !(allowed & (1 << gso)))) ||
      ((gsoType & VIRTIO_NET_HDR_GSO_ECN) && !(allowed & (1 << 7))) ||
      ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !(allowed & (1 << 8)))
    ) {
      throw new VirtqueueError(
        `virtio-net: TX header asks for an offload the driver did not negotiate ` +
          `(flags ${flags}, gso_type ${gsoType})`,
      );
    }
    const frame = c.readableBytes - VIRTIO_NET_HDR_SIZE;
    if (frame > VIRTIO_NET_MAX_FRAME || !this.#linkUp) {
      this.stats.txDropped++;
      q.pushUsed(c.head, 0);
      return true;
    }
    const v = this.#iovView;
    const ram = this.#ram;
    for (let i = 0; i < c.count; i++) {
      const h = ram.host(c.addr[i], c.len[i]);
      v.setUint32(i * IOV_BYTES, h >>> 0, true);
      v.setUint32(i * IOV_BYTES + 4, Math.floor(h / TWO_32), true);
      v.setUint32(i * IOV_BYTES + 8, c.len[i], true);
      v.setUint32(i * IOV_BYTES + 12, 0, true);
    }
    for (;;) {
      const n = Number(libc.writev(this.#tap.fd, this.#iov, c.count));
      if (n >= 0) {
        this.stats.txPackets++;
        this.stats.txBytes += frame;
        break;
      }
      const e = errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) return false;
      // The kernel refused the frame (EINVAL: bad header; EIO: tap down).
      this.stats.txDropped++;
      break;
    }
    q.pushUsed(c.head, 0);
    return true;
  }
}
