/**
 * virtio-net (virtio spec 5.1) on a tap device: queue 0 receives, queue 1
 * transmits. Frames keep the 12-byte virtio_net_hdr_v1 prefix end to end,
 * so checksum and segmentation offloads pass between the guest and the
 * host kernel untouched (TUNSETOFFLOAD mirrors the GUEST_* features the
 * driver accepted).
 *
 * - RX: the tap fd's read handler on the owning loop pops a chain and
 *   reads the next frame straight into it (readv, no copy); with MRG_RXBUF
 *   what does not fit lands in a host buffer and is copied into as many
 *   further chains as it needs, published together. With no buffer to
 *   take the next frame the handler is dropped (the tap queues, then the
 *   host kernel drops and counts) until the driver kicks the RX queue.
 * - TX: the queue's ioeventfd kick writes each chain with writev straight
 *   from guest RAM, a bounded batch per turn; EAGAIN waits for the tap to
 *   become writable.
 *
 * Frames the device cannot pass on are counted in {@link NetStats}; guest
 * chains that break the spec mark the device broken. Nothing is allocated
 * per frame (host addresses are plain numbers, iovecs are reused, the
 * syscalls return i32): bench/net_path_bench.ts measures it.
 *
 * @module
 */
import { memcpyHost, readvI32, writevI32 } from "../../sys/libc.ts";
import { EAGAIN, EINTR, errno } from "../../sys/errno.ts";
import type { Tap } from "../../sys/tun.ts";
import {
  linkWord,
  type NetStats,
  SharedNetStats,
  STAT_RX_BYTES,
  STAT_RX_DROPPED,
  STAT_RX_PACKETS,
  STAT_RX_STALLS,
  STAT_TX_BYTES,
  STAT_TX_DROPPED,
  STAT_TX_PACKETS,
  type VirtioNetOptions,
} from "./net_types.ts";
export type { NetStats, VirtioNetOptions } from "./net_types.ts";
import { TUN_F_CSUM, TUN_F_UFO } from "../../sys/tun.ts";
import type { Bh, EventLoop } from "../../mainloop/types.ts";
import { featureBit } from "./constants.ts";
import type { VirtioContext, VirtioDevice } from "./device.ts";
import {
  initNetConfig,
  netDeviceFeatures,
  offloadsFor,
  txHeaderAllowed,
  txOffloadMask,
} from "./net_features.ts";
export { initNetConfig, netDeviceFeatures, offloadsFor } from "./net_features.ts";
import { DescriptorChain, type SplitQueue, VirtqueueError } from "./queue.ts";
import { GuestRamMap, IOV_BYTES, setIovec } from "./net_ram_map.ts";
import {
  VIRTIO_ID_NET,
  VIRTIO_NET_CFG_SIZE,
  VIRTIO_NET_CFG_STATUS,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MRG_RXBUF,
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

const RX_BUF_BYTES = VIRTIO_NET_HDR_SIZE + VIRTIO_NET_MAX_FRAME;

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
  /** processQueue starts no promise reactions: kicks are registered `sync`. */
  readonly syncQueues = true;
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
  readonly stats: NetStats;
  /** The counters of {@link VirtioNet.stats} (STAT_* indices). */
  readonly #count: Float64Array;
  readonly #tap: Tap;
  readonly #loop: EventLoop;
  readonly #mac: Uint8Array;
  /** The TX chain being sent. */
  readonly #chain: DescriptorChain;
  /** The RX chain being filled (or popped ahead and held while the tap is empty). */
  readonly #rxChain: DescriptorChain;
  readonly #rxBuf = new Uint8Array(RX_BUF_BYTES);
  /** Host address of #rxBuf (stored outside the JS heap, it never moves), and its iovec. */
  readonly #rxBase = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#rxBuf)));
  readonly #rxIov = new Uint8Array(IOV_BYTES);
  /** Guest RAM regions as plain numbers, for host addresses without BigInt per packet. */
  readonly #ram = new GuestRamMap();
  readonly #iov: Uint8Array;
  readonly #iovView: DataView;
  /** RX iovecs (a held chain's stay ready while TX uses #iov). */
  readonly #rxIovs: Uint8Array;
  readonly #rxIovView: DataView;
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
  /** Chains the pending frame holds (popped, not yet published). */
  #rxUsed = 0;
  /** Bytes of the pending frame placed in those chains. */
  #rxDone = 0;
  /** Bytes of the pending frame read straight into its first chain. */
  #rxInGuest = 0;
  /**
   * Whether #rxChain holds a popped RX chain, its iovecs in #rxIovs, that
   * no frame has filled yet: the tap was empty when it was popped. The
   * next frame is read straight into it, so an empty tap costs one readv
   * and no pop/undo per wake-up (the chain was validated at pop; holding
   * a buffer before using it is what every device does).
   */
  #rxHeld = false;
  /** Guest addresses of num_buffers' two bytes in the pending frame. */
  #nbAddr0 = -1;
  #nbAddr1 = -1;
  #reading = false;
  #txWaitWritable = false;
  #inTx = false;
  #txSent = 0;
  readonly #onReadable = () => this.#receive();
  readonly #onWritable = () => {
    this.#txWaitWritable = false;
    this.#syncFdHandler();
    this.processQueue(NET_TX_QUEUE);
  };

  /** @param options tap, loop, MAC, queue size */
  constructor(options: VirtioNetOptions) {
    if (options.mac.length !== 6) throw new RangeError("A MAC address has 6 bytes");
    const stats = new SharedNetStats(options.control);
    this.stats = stats;
    this.#count = stats.values;
    if (options.control) this.#linkUp = linkWord(options.control) !== 0;
    this.#tap = options.tap;
    this.#loop = options.loop;
    this.#mac = options.mac.slice();
    this.queueMaxSize = options.queueSize ?? 256;
    this.#chain = new DescriptorChain(this.queueMaxSize);
    this.#rxChain = new DescriptorChain(this.queueMaxSize);
    this.#iov = new Uint8Array(IOV_BYTES * (this.queueMaxSize + 1));
    this.#iovView = new DataView(this.#iov.buffer);
    this.#rxIovs = new Uint8Array(IOV_BYTES * (this.queueMaxSize + 1));
    this.#rxIovView = new DataView(this.#rxIovs.buffer);
    setIovec(new DataView(this.#rxIov.buffer), 0, this.#rxBase, RX_BUF_BYTES);
    this.#heads = new Uint32Array(this.queueMaxSize);
    this.#lens = new Uint32Array(this.queueMaxSize);
    this.#txBh = options.loop.bh(() => this.processQueue(NET_TX_QUEUE), "virtio-net-tx", {
      sync: true,
    });
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
    this.#txAllowed = txOffloadMask(f);
    this.#tap.setOffload(offloadsFor(f));
    this.#ram.load(ctx.mem);
    this.#ctx = ctx;
    this.#rxq = ctx.queues[NET_RX_QUEUE] ?? null;
    this.#txq = ctx.queues[NET_TX_QUEUE] ?? null;
    this.#rxHeld = false;
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
    this.#rxHeld = false;
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
    if (index !== NET_TX_QUEUE) return;
    this.#transmit();
    // A reply the host made while the frames were written (an echo, an ACK) is
    // usually on the tap already: take it now rather than a loop turn later.
    if (this.#txSent > 0 && this.#reading) this.#receive();
  }

  /** Registers the tap handlers the current state needs. */
  #syncFdHandler(): void {
    const read = this.#reading ? this.#onReadable : null;
    const write = this.#txWaitWritable ? this.#onWritable : null;
    this.#loop.setFdHandler(this.#tap.fd, read || write ? { read, write, sync: true } : null);
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
          if (!this.#rxHeld && !this.#waitRx(q, 0)) break;
          const n = this.#readFrame(q);
          if (n < 0) break;
          if (n === 0) continue;
        }
        if (!this.#deliver(q)) {
          if (!this.#waitRx(q, 0)) break;
          continue;
        }
        delivered++;
      }
    } catch (e) {
      this.#rxPending = 0;
      this.#rxHeld = false;
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
    this.#count[STAT_RX_STALLS]++;
    this.#syncFdHandler();
    return false;
  }

  /**
   * Pops the first RX chain (unless one is held) and reads the next frame
   * straight into it (readv), the rest into the host buffer. Returns the
   * frame's bytes (then pending), 0 when nothing usable was read (try
   * again), or -1 when the tap is empty (the chain stays held).
   */
  #readFrame(q: SplitQueue): number {
    const chain = this.#rxChain;
    if (!this.#rxHeld) {
      if (!q.pop(chain)) return -1;
      if (chain.readableCount !== 0) {
        throw new VirtqueueError("virtio-net: RX chain has device-readable descriptors");
      }
      if (chain.writableBytes < VIRTIO_NET_HDR_SIZE) {
        throw new VirtqueueError("virtio-net: RX buffer smaller than the virtio-net header");
      }
      const v = this.#rxIovView;
      const ram = this.#ram;
      for (let i = 0; i < chain.count; i++) ram.setIovec(v, i, chain.addr[i], chain.len[i]);
      this.#rxIovs.set(this.#rxIov, chain.count * IOV_BYTES);
      this.#rxHeld = true;
    }
    const n = readvI32(this.#tap.fd, this.#rxIovs, chain.count + 1);
    if (n < 0) {
      const e = errno();
      if (e === EINTR) return 0;
      if (e !== EAGAIN) this.#count[STAT_RX_DROPPED]++;
      return -1;
    }
    // A runt (no frame after the header) is skipped; the chain stays held.
    if (n <= VIRTIO_NET_HDR_SIZE) return 0;
    this.#rxHeld = false;
    const first = Math.min(n, chain.writableBytes);
    this.#notePosition(first);
    if (!this.#guestCsum) this.#ram.writeU8(byteAddr(chain, 0), 0);
    this.#heads[0] = chain.head;
    this.#lens[0] = first;
    this.#rxUsed = 1;
    this.#rxDone = first;
    this.#rxInGuest = first;
    this.#rxPending = n;
    return n;
  }

  /** Records where num_buffers lies among the first `len` bytes of the RX chain. */
  #notePosition(len: number): void {
    const c = this.#rxChain;
    if (c.len[0] >= VIRTIO_NET_HDR_NUM_BUFFERS + 2) {
      // The usual case: the header lies in the first buffer.
      this.#nbAddr0 = c.addr[0] + VIRTIO_NET_HDR_NUM_BUFFERS;
      this.#nbAddr1 = this.#nbAddr0 + 1;
      return;
    }
    this.#nbAddr0 = -1;
    this.#nbAddr1 = -1;
    for (let i = 0, pos = 0; i < c.count && pos < len; pos += c.len[i], i++) {
      const seg = Math.min(c.len[i], len - pos);
      for (let b = 0; b < 2; b++) {
        const at = VIRTIO_NET_HDR_NUM_BUFFERS + b;
        if (pos <= at && at < pos + seg) {
          if (b === 0) this.#nbAddr0 = c.addr[i] + at - pos;
          else this.#nbAddr1 = c.addr[i] + at - pos;
        }
      }
    }
  }

  /**
   * Places the rest of the pending frame (beyond its first chain) into
   * more chains and publishes them all. Returns false, holding the chains
   * popped so far, when the queue lacks buffers; drops frames that can
   * never fit.
   */
  #deliver(q: SplitQueue): boolean {
    const total = this.#rxPending;
    const chain = this.#rxChain;
    const ram = this.#ram;
    const base = this.#rxBase - this.#rxInGuest;
    let off = this.#rxDone, used = this.#rxUsed;
    while (off < total) {
      if (!this.#mergeable || used >= q.size) {
        // It can never fit: give the buffers back and count the drop.
        for (let i = 0; i < used; i++) q.undoPop();
        this.#rxPending = 0;
        this.#count[STAT_RX_DROPPED]++;
        return true;
      }
      if (!q.pop(chain)) {
        this.#rxDone = off;
        this.#rxUsed = used;
        return false;
      }
      if (chain.readableCount !== 0) {
        throw new VirtqueueError("virtio-net: RX chain has device-readable descriptors");
      }
      const start = off;
      // The overflow sits in the host buffer: copy it (rare with MTU-sized frames).
      for (let i = 0; i < chain.count && off < total; i++) {
        const len = Math.min(chain.len[i], total - off);
        if (len > 0) memcpyHost(ram.host(chain.addr[i], len), base + off, len);
        off += len;
      }
      this.#heads[used] = chain.head;
      this.#lens[used] = off - start;
      used++;
    }
    ram.writeU8(this.#nbAddr0, used & 0xff);
    ram.writeU8(this.#nbAddr1, used >> 8);
    for (let i = 0; i < used; i++) q.fillUsed(i, this.#heads[i], this.#lens[i]);
    q.flushUsed(used);
    this.#rxPending = 0;
    const count = this.#count;
    count[STAT_RX_PACKETS]++;
    count[STAT_RX_BYTES] += total - VIRTIO_NET_HDR_SIZE;
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
          if (!this.#sendChain(q)) {
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
      this.#txSent = sent;
      if (sent > 0 && !ctx.broken) ctx.signalUsed(NET_TX_QUEUE);
    }
  }

  /** Sends the popped chain; false when the tap is full (EAGAIN). */
  #sendChain(q: SplitQueue): boolean {
    const c = this.#chain;
    const ram = this.#ram;
    if (c.readableCount !== c.count) {
      throw new VirtqueueError("virtio-net: TX chain has device-writable descriptors");
    }
    if (c.readableBytes < VIRTIO_NET_HDR_SIZE) {
      throw new VirtqueueError("virtio-net: TX chain shorter than the virtio-net header");
    }
    // flags and gso_type: the header's first two bytes (possibly split).
    const whole = c.len[0] >= 2;
    const flags = ram.readU8(whole ? c.addr[0] : byteAddr(c, 0));
    const gsoType = ram.readU8(whole ? c.addr[0] + 1 : byteAddr(c, 1));
    if (!txHeaderAllowed(flags, gsoType, this.#txAllowed)) {
      throw new VirtqueueError(
        `virtio-net: TX header asks for an offload the driver did not negotiate ` +
          `(flags ${flags}, gso_type ${gsoType})`,
      );
    }
    const frame = c.readableBytes - VIRTIO_NET_HDR_SIZE;
    const count = this.#count;
    if (frame > VIRTIO_NET_MAX_FRAME || !this.#linkUp) {
      count[STAT_TX_DROPPED]++;
      q.pushUsed(c.head, 0);
      return true;
    }
    const v = this.#iovView;
    for (let i = 0; i < c.count; i++) ram.setIovec(v, i, c.addr[i], c.len[i]);
    for (;;) {
      const n = writevI32(this.#tap.fd, this.#iov, c.count);
      if (n >= 0) {
        count[STAT_TX_PACKETS]++;
        count[STAT_TX_BYTES] += frame;
        break;
      }
      const e = errno();
      if (e === EINTR) continue;
      if (e === EAGAIN) return false;
      // The kernel refused the frame (EINVAL: bad header; EIO: tap down).
      count[STAT_TX_DROPPED]++;
      break;
    }
    q.pushUsed(c.head, 0);
    return true;
  }
}

/** Guest address of byte `at` of a chain's buffers (callers checked the chain is long enough). */
function byteAddr(c: DescriptorChain, at: number): number {
  for (let i = 0, pos = 0; i < c.count; pos += c.len[i], i++) {
    if (at < pos + c.len[i]) return c.addr[i] + at - pos;
  }
  return -1;
}
