/**
 * A tap stand-in for virtio-net tests and benchmarks that need no root: a
 * Unix SOCK_SEQPACKET socketpair keeps frame boundaries as a tap does, so
 * the device reads one frame (virtio_net_hdr_v1 + Ethernet frame) per
 * read(2) and writes one per writev(2); the test owns the other end. A
 * hand-driven loop runs the device's fd handlers and bottom halves.
 *
 * @module
 */
import { libc } from "../../sys/libc.ts";
import { errno, ErrnoError } from "../../sys/errno.ts";
import type { Tap } from "../../sys/tun.ts";
import type {
  Bh,
  BhHandle,
  ClockType,
  EventLoop,
  FdHandlers,
  Timer,
} from "../../mainloop/types.ts";
import { GuestMemory } from "../../memory/guest_memory.ts";
import { CountingSink, TestDriver, wireDevice } from "./_test_driver.ts";
import type { VirtioDevice } from "./device.ts";
import type { VirtioPciDevice } from "./pci.ts";
import type { VirtioPciBackend } from "./pci_backend.ts";

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SOCK_NONBLOCK = 0x800;
const SOCK_CLOEXEC = 0x80000;

/** A socketpair posing as a tap: `fd` goes to the device, `peer` stays with the test. */
export class SocketTap implements Tap {
  /** The device's end. */
  readonly fd: number;
  /** The test's end (non-blocking). */
  readonly peer: number;
  /** Interface name (fixed). */
  readonly name = "fake0";
  /** The last offloads the device set. */
  offloads = 0;
  #closed = false;

  constructor() {
    const sv = new Int32Array(2);
    const type = SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC;
    if (libc.socketpair(AF_UNIX, type, 0, sv) < 0) throw new ErrnoError("socketpair", errno());
    this.fd = sv[0];
    this.peer = sv[1];
  }

  setOffload(flags: number): void {
    this.offloads = flags;
  }

  supportsOffload(_flags: number): boolean {
    return true;
  }

  setPersist(_on: boolean): void {}

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.close(this.fd);
    libc.close(this.peer);
  }
}

/** A loop driven by hand: `poll()` runs ready handlers once, then due BHs. */
export class ManualLoop implements EventLoop {
  /** Registered handlers by fd. */
  readonly handlers = new Map<number, FdHandlers>();
  readonly #bhs: { cb: () => void; pending: boolean }[] = [];

  setFdHandler(fd: number, handlers: FdHandlers | null): void {
    if (handlers) this.handlers.set(fd, handlers);
    else this.handlers.delete(fd);
  }

  bh(cb: () => void): Bh {
    const b = { cb, pending: false };
    this.#bhs.push(b);
    return {
      schedule: () => {
        b.pending = true;
      },
      cancel: () => {
        b.pending = false;
      },
      delete: () => {
        b.pending = false;
      },
      handle: (): BhHandle => {
        throw new Error("ManualLoop BHs are not shared");
      },
    };
  }

  timer(_clock: ClockType, _cb: () => void): Timer {
    throw new Error("ManualLoop has no timers");
  }

  now(_clock: ClockType): number {
    return performance.now() * 1e6;
  }

  notify(): void {}

  /** Runs the read handler of `fd` if one is registered; returns whether it ran. */
  readable(fd: number): boolean {
    const h = this.handlers.get(fd);
    if (!h?.read) return false;
    h.read();
    return true;
  }

  /** Runs every pending BH once; returns how many ran. */
  runBhs(): number {
    let n = 0;
    for (const b of this.#bhs) {
      if (!b.pending) continue;
      b.pending = false;
      b.cb();
      n++;
    }
    return n;
  }
}

/** A virtio-net device on a {@link SocketTap}, behind the PCI transport and the test driver. */
export interface SocketNetRig<D extends VirtioDevice> {
  mem: GuestMemory;
  tap: SocketTap;
  loop: ManualLoop;
  device: D;
  dev: VirtioPciDevice;
  backend: VirtioPciBackend;
  drv: TestDriver;
  sink: CountingSink;
  logs: string[];
  /** Releases the memory and the sockets. */
  close(): void;
}

/**
 * Builds a virtio-net model (the current one, or any class with its
 * constructor: a benchmark's baseline) on a socket tap.
 *
 * @param make builds the device from tap, loop and MAC
 * @param sizes RX and TX queue sizes (default 256 each)
 * @returns the rig; the driver is not initialised yet
 */
export function socketNetRig<D extends VirtioDevice>(
  make: (o: { tap: Tap; loop: EventLoop; mac: Uint8Array }) => D,
  sizes: [number, number] = [256, 256],
): SocketNetRig<D> {
  const mem = GuestMemory.allocate(32 << 20);
  const tap = new SocketTap();
  const loop = new ManualLoop();
  const device = make({ tap, loop, mac: FAKE_MAC });
  const sink = new CountingSink();
  const logs: string[] = [];
  const { dev, backend } = wireDevice(device, mem, { interrupt: sink, log: (m) => logs.push(m) });
  const drv = new TestDriver(mem, dev, { sizes });
  return {
    mem,
    tap,
    loop,
    device,
    dev,
    backend,
    drv,
    sink,
    logs,
    close() {
      device.reset(() => {});
      tap.close();
      mem.close();
    },
  };
}

/** The MAC of the socket rig's device. */
export const FAKE_MAC = Uint8Array.from([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

/**
 * V8 flags for measuring JS heap growth per frame: gc() exposed, a young
 * generation large enough that no scavenge runs during a round, and
 * optimisation on the main thread (so the measured round runs optimised
 * code, not whatever was ready in time).
 */
export const HEAP_MEASURE_V8_FLAGS =
  "--expose-gc,--min-semi-space-size=64,--max-semi-space-size=64,--no-concurrent-recompilation";
