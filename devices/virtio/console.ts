/**
 * virtio-console (virtio spec 5.3) with one port and no multiport control
 * queue: the guest's `hvc0`. Queue 0 (receiveq0) carries host input to
 * the guest, queue 1 (transmitq0) the guest's output. The host side has
 * the 16550's shape: {@link VirtioConsole.enqueueInput} takes what fits in
 * the guest's buffers now and returns how much, and output goes to a sink
 * callback, so the terminal (ui/terminal.ts) or a library user drives it
 * exactly as it drives the serial console.
 *
 * @module
 */
import { libc } from "../../sys/libc.ts";
import { EAGAIN, EINTR, errno } from "../../sys/errno.ts";
import { featureBit, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from "./constants.ts";
import type { VirtioContext, VirtioDevice } from "./device.ts";
import { DescriptorChain, type SplitQueue, VirtqueueError } from "./queue.ts";

/** Virtio device id of a console. */
export const VIRTIO_ID_CONSOLE = 3;
/** receiveq0: host to guest. */
export const CONSOLE_RX_QUEUE = 0;
/** transmitq0: guest to host. */
export const CONSOLE_TX_QUEUE = 1;
/** sizeof(struct virtio_console_config): cols, rows, max_nr_ports, emerg_wr. */
export const VIRTIO_CONSOLE_CFG_SIZE = 12;

/** Options for {@link VirtioConsole}. */
export interface VirtioConsoleOptions {
  /** Receives guest output (the bytes are valid only during the call). */
  output: (bytes: Uint8Array) => void;
  /** Called when the guest added receive buffers (input may be retried now). */
  onRxSpace?: () => void;
  /** Queue size (default 128). */
  queueSize?: number;
}

/**
 * The virtio-console device model.
 *
 * @example
 * ```ts ignore
 * const con = new VirtioConsole({ output: (b) => writeAll(1, b.slice()) });
 * term = new Terminal({ loop, onInput: (b) => con.enqueueInput(b), onQuit });
 * ```
 */
export class VirtioConsole implements VirtioDevice {
  /** VIRTIO_ID_CONSOLE. */
  readonly deviceType = VIRTIO_ID_CONSOLE;
  /** receiveq0 and transmitq0. */
  readonly numQueues = 2;
  /** Maximum queue size. */
  readonly queueMaxSize: number;
  /** Ring features only (no size, multiport or emergency write). */
  readonly deviceFeatures = featureBit(VIRTIO_RING_F_EVENT_IDX) |
    featureBit(VIRTIO_RING_F_INDIRECT_DESC);
  /** cols, rows, max_nr_ports, emerg_wr. */
  readonly configSize = VIRTIO_CONSOLE_CFG_SIZE;
  /** PCI class: simple communication controller, other. */
  readonly pciClass = 0x078000;
  /** Bytes moved each way. */
  readonly stats = { inBytes: 0, outBytes: 0 };
  readonly #output: (bytes: Uint8Array) => void;
  readonly #onRxSpace: (() => void) | undefined;
  readonly #chain: DescriptorChain;
  #ctx: VirtioContext | null = null;
  #rxq: SplitQueue | null = null;
  #txq: SplitQueue | null = null;

  /** @param options output sink, queue size */
  constructor(options: VirtioConsoleOptions) {
    this.#output = options.output;
    this.#onRxSpace = options.onRxSpace;
    this.queueMaxSize = options.queueSize ?? 128;
    this.#chain = new DescriptorChain(this.queueMaxSize);
  }

  /** @param config zeros: no size or ports to report */
  initConfig(config: Uint8Array): void {
    config.fill(0);
  }

  /** @param ctx queues and signalling */
  activate(ctx: VirtioContext): void {
    this.#ctx = ctx;
    this.#rxq = ctx.queues[CONSOLE_RX_QUEUE] ?? null;
    this.#txq = ctx.queues[CONSOLE_TX_QUEUE] ?? null;
  }

  /** @param drained called at once */
  reset(drained: () => void): void {
    this.#ctx = null;
    this.#rxq = null;
    this.#txq = null;
    drained();
  }

  /** Whether the driver is ready to receive (hvc0 open or buffers posted). */
  get ready(): boolean {
    return this.#rxq !== null && !this.#ctx?.broken;
  }

  /**
   * Copies host input into the guest's receive buffers, as much as they
   * hold now.
   *
   * @param bytes input for the guest
   * @returns how many bytes were taken (the caller offers the rest later)
   */
  enqueueInput(bytes: Uint8Array): number {
    const q = this.#rxq;
    const ctx = this.#ctx;
    if (!q || !ctx || ctx.broken) return 0;
    const c = this.#chain;
    let taken = 0;
    try {
      while (taken < bytes.length && q.pop(c)) {
        if (c.readableCount !== 0) {
          throw new VirtqueueError("virtio-console: receive buffer is device-readable");
        }
        const start = taken;
        for (let i = 0; i < c.count && taken < bytes.length; i++) {
          const n = Math.min(c.len[i], bytes.length - taken);
          ctx.mem.slice(c.addr[i], n).set(bytes.subarray(taken, taken + n));
          taken += n;
        }
        q.pushUsed(c.head, taken - start);
      }
    } catch (e) {
      ctx.markBroken(e instanceof Error ? e.message : String(e));
      return taken;
    }
    if (taken > 0) {
      this.stats.inBytes += taken;
      ctx.signalUsed(CONSOLE_RX_QUEUE);
    }
    return taken;
  }

  /** @param index the kicked queue */
  processQueue(index: number): void {
    if (index === CONSOLE_RX_QUEUE) {
      this.#onRxSpace?.();
      return;
    }
    const q = this.#txq;
    const ctx = this.#ctx;
    if (index !== CONSOLE_TX_QUEUE || !q || !ctx) return;
    const c = this.#chain;
    let done = 0;
    try {
      for (;;) {
        q.disableNotification();
        // hvc waits for each buffer before the next, so a kick carries few.
        while (!ctx.broken && q.pop(c)) {
          if (c.readableCount !== c.count) {
            throw new VirtqueueError("virtio-console: transmit buffer is device-writable");
          }
          for (let i = 0; i < c.count; i++) {
            if (c.len[i] > 0) this.#output(ctx.mem.slice(c.addr[i], c.len[i]));
          }
          this.stats.outBytes += c.readableBytes;
          q.pushUsed(c.head, 0);
          done++;
        }
        if (ctx.broken || !q.enableNotification()) break;
      }
    } finally {
      if (done > 0 && !ctx.broken) ctx.signalUsed(CONSOLE_TX_QUEUE);
    }
  }
}

// One registry per process even when the factory module is loaded twice
// (once statically, once as a blob module under --allow-ffi alone).
const REGISTRY = Symbol.for("denovmm.virtioConsoles");
const consoles: Map<number, VirtioConsole> =
  ((globalThis as Record<symbol, unknown>)[REGISTRY] as Map<number, VirtioConsole>) ??
    ((globalThis as Record<symbol, unknown>)[REGISTRY] = new Map<number, VirtioConsole>());

/**
 * Builds virtio-console on the loop that owns its queues; guest output is
 * written to `outFd` (the terminal, or a pipe a library reader drains),
 * and the model is registered under `id` so the same thread's terminal
 * can feed it ({@link virtioConsoleById}).
 *
 * @param args output fd and registry id
 * @param _ctx the loop (unused: the console needs no timers)
 * @returns the device model and its release
 * @example
 * ```ts ignore
 * { module: CONSOLE_MODULE, factory: "virtioConsoleBackend", args: { outFd: 1, id: 0 } }
 * ```
 */
export function virtioConsoleBackend(
  args: { outFd: number; id: number },
  _ctx: unknown,
): { device: VirtioConsole; close(): void } {
  const fd = args.outFd;
  const device = new VirtioConsole({
    output(bytes) {
      let off = 0;
      while (off < bytes.length) {
        const part = off === 0 ? bytes : bytes.subarray(off);
        const n = Number(libc.write(fd, part, BigInt(part.length)));
        if (n < 0) {
          const e = errno();
          if (e === EINTR || e === EAGAIN) continue;
          return; // The reader went away: output is dropped like a closed terminal's.
        }
        off += n;
      }
    },
  });
  consoles.set(args.id, device);
  return {
    device,
    close() {
      consoles.delete(args.id);
    },
  };
}

/**
 * The console built by {@link virtioConsoleBackend} in this thread.
 *
 * @param id its registry id
 * @returns the model, if any
 * @example
 * ```ts ignore
 * term = new Terminal({ loop, onInput: (b) => virtioConsoleById(0)?.enqueueInput(b) ?? 0 });
 * ```
 */
export function virtioConsoleById(id: number): VirtioConsole | undefined {
  return consoles.get(id);
}

/** This module's URL, for `{module, factory}` specs. */
export const CONSOLE_MODULE: string = new URL(import.meta.url).href;
