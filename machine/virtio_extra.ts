/**
 * Virtio functions other than disks (virtio-net, virtio-rng,
 * virtio-console) on the loop that owns their queues, in two steps so a
 * model is built once: {@link prepareVirtioExtra} builds it with its
 * factory and answers its transport shape; {@link attachVirtioExtra}
 * connects it to its PCI function (ioeventfds in, irqfds or INTx out).
 * Callable on the main loop directly or on an iothread through
 * `IOThread.call`.
 *
 * @module
 */
import type { EventLoop } from "../mainloop/types.ts";
import type { VirtioDevice } from "../devices/virtio/device.ts";
import {
  VirtioPciBackend,
  VirtioPciDevice,
  type VirtioPciSpec,
  virtioPciSpecOf,
} from "../devices/virtio/pci.ts";
import { GuestMemory, type GuestMemoryLayout } from "../memory/guest_memory.ts";
import { KvmIrqLine } from "../kvm/vm.ts";
import { eventFdWrite } from "../sys/fd.ts";
import type { PciFunctionArgs } from "./pci_devices.ts";
import { virtioNetBackend } from "../devices/virtio/net_backend.ts";
import { virtioRngBackend } from "../devices/virtio/rng.ts";
import { virtioConsoleBackend } from "../devices/virtio/console.ts";

type Factory = (
  args: never,
  ctx: { loop: EventLoop },
) => { device: VirtioDevice; close?(): void };

const FACTORIES: Record<string, Factory> = {
  virtioNetBackend,
  virtioRngBackend,
  virtioConsoleBackend,
};

/** A virtio function to add: which factory, its arguments, which loop. */
export interface VirtioExtra {
  /** Factory name (virtioNetBackend, virtioRngBackend, virtioConsoleBackend). */
  factory: string;
  /** Its postMessage-able arguments. */
  args: unknown;
  /** iothread number, or the main loop when absent. */
  iothread?: number;
}

interface Entry {
  device: VirtioDevice;
  close?(): void;
  loop: EventLoop;
  fds: number[];
}

const entries = new Map<number, Entry>();

/**
 * Builds a model on this loop's thread.
 *
 * @param loop the loop that will own its queues
 * @param a registry id, factory and arguments
 * @returns the model's transport shape
 * @example
 * ```ts ignore
 * const spec = prepareVirtioExtra(loop, { id: 1, factory: "virtioRngBackend", args: {} });
 * ```
 */
export function prepareVirtioExtra(
  loop: EventLoop,
  a: { id: number; factory: string; args: unknown },
): VirtioPciSpec {
  const f = FACTORIES[a.factory];
  if (!f) throw new TypeError(`Unknown virtio factory ${a.factory}`);
  const built = f(a.args as never, { loop });
  entries.set(a.id, { device: built.device, close: built.close?.bind(built), loop, fds: [] });
  return virtioPciSpecOf(built.device);
}

/**
 * Connects a prepared model to its function and starts serving it. Writes
 * the device config, so it must finish before any vCPU runs.
 *
 * @param loop the same loop as for prepare
 * @param a registry id, guest RAM, VM fd and the function
 * @example
 * ```ts ignore
 * attachVirtioExtra(loop, { id: 1, memory: m.memory.layout, vmFd: m.vm.fd, fn });
 * ```
 */
export function attachVirtioExtra(
  loop: EventLoop,
  a: { id: number; memory: GuestMemoryLayout; vmFd: number; fn: PciFunctionArgs },
): void {
  const e = entries.get(a.id);
  if (!e) throw new Error(`virtio function ${a.id} was not prepared`);
  const f = a.fn;
  const transport = new VirtioPciDevice(f.spec, { state: f.state });
  const line = new KvmIrqLine(a.vmFd, f.intxGsi);
  const msixFds = f.msixFds;
  const interrupt = {
    msix(vector: number) {
      const fd = msixFds[vector];
      if (fd !== undefined) eventFdWrite(fd);
    },
    intx(level: boolean) {
      line.set(level);
    },
  };
  const mem = GuestMemory.fromLayout(a.memory);
  const backend = new VirtioPciBackend({ transport, device: e.device, mem, interrupt });
  backend.attach(loop, f.notifyFds, f.controlFd);
  e.fds = [...f.notifyFds, f.controlFd];
}

/**
 * Stops serving a function and releases its model.
 *
 * @param _loop the loop (the iothread calling convention)
 * @param id its registry id
 * @example
 * ```ts ignore
 * stopVirtioExtra(loop, 1);
 * ```
 */
export function stopVirtioExtra(_loop: EventLoop, id: number): void {
  const e = entries.get(id);
  if (!e) return;
  entries.delete(id);
  for (const fd of e.fds) e.loop.setFdHandler(fd, null);
  e.close?.();
}
