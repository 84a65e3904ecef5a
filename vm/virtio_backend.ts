/**
 * The device side of any virtio-pci function, on the loop thread that owns
 * its queues (the main loop, or an iothread through `IOThread.call`). The
 * builder drives it in two steps, so a device model is built exactly once:
 *
 * 1. {@link prepareVirtioBackend} imports the device's factory module, builds
 *    the model and answers with its transport shape (queues, features,
 *    config size): the builder needs it to lay out slots, BARs and GSIs.
 * 2. {@link attachVirtioBackend} gets the function's shared registers and
 *    fds, writes the device config, and starts serving kicks (ioeventfds)
 *    and status changes, raising interrupts through irqfds (MSI-X) or
 *    KVM_IRQ_LINE (INTx).
 *
 * {@link stopVirtioBackend} unhooks the fds and waits for in-flight I/O.
 *
 * @module
 */
import type { EventLoop } from "../mainloop/types.ts";
import type { VirtioDevice } from "../devices/virtio/device.ts";
import { VirtioPciDevice, type VirtioPciSpec, virtioPciSpecOf } from "../devices/virtio/pci.ts";
import { VirtioPciBackend } from "../devices/virtio/pci_backend.ts";
import { GuestMemory, type GuestMemoryLayout } from "../memory/guest_memory.ts";
import { KvmIrqLine } from "../kvm/vm.ts";
import { eventFdWrite } from "../sys/fd.ts";
import { workerUrl } from "../sys/worker_url.ts";
import type { PciFunctionArgs } from "../machine/pci_devices.ts";
import { importServed } from "../sys/bundle_registry.ts";

/** What a {@link VirtioBackendFactory} gets besides its arguments. */
export interface VirtioBackendContext {
  /** The loop the device's queues run on (its thread is the caller's). */
  readonly loop: EventLoop;
}

/** Where a function ended up, for a backend that wires more than queues (vhost). */
export interface AttachedFunction {
  /** Guest RAM (for a vhost memory table). */
  readonly memory: GuestMemoryLayout;
  /** The VM fd. */
  readonly vmFd: number;
  /** The function's registers, slot, kick eventfds (KVM ioeventfds), irqfds and GSIs. */
  readonly fn: PciFunctionArgs;
}

/** A device model built by a factory, and how to let it go. */
export interface VirtioBackend {
  /** The model. */
  readonly device: VirtioDevice;
  /**
   * Told where the function went, before the guest runs (after the layout
   * is decided): a vhost backend hands the kick eventfds and irqfds to the
   * kernel here.
   */
  attached?(where: AttachedFunction): void | Promise<void>;
  /** Releases what the model holds (aio engines, fds); awaited at teardown. */
  close?(): void | Promise<void>;
}

/**
 * Builds a device model on its loop thread from postMessage-able arguments.
 * Export one from a module and name it in a `VirtioFunctionConfig`.
 */
export type VirtioBackendFactory = (
  args: never,
  ctx: VirtioBackendContext,
) => VirtioBackend | Promise<VirtioBackend>;

/** Arguments of {@link prepareVirtioBackend}. */
export interface PrepareVirtioArgs {
  /** Registry key in the loop's thread. */
  id: number;
  /** Factory module URL. */
  module: string;
  /** Factory export name. */
  factory: string;
  /** Factory arguments. */
  args: unknown;
}

/** Arguments of {@link attachVirtioBackend}. */
export interface AttachVirtioArgs {
  /** The key given to {@link prepareVirtioBackend}. */
  id: number;
  /** Guest RAM. */
  memory: GuestMemoryLayout;
  /** The VM fd (INTx through KVM_IRQ_LINE). */
  vmFd: number;
  /** The function's registers, fds and GSIs. */
  fn: PciFunctionArgs;
}

interface Entry {
  backend: VirtioBackend;
  loop: EventLoop;
  fds: number[];
}

const entries = new Map<number, Entry>();

async function importFactory(module: string): Promise<Record<string, unknown>> {
  try {
    return await import(module);
  } catch (e) {
    // Without read permission only modules already loaded import directly;
    // any other is read through libc (sys/worker_url.ts).
    const url = workerUrl(module);
    if (url === module) throw e;
    return await importServed(url);
  }
}

/**
 * Builds a device model with its factory on this loop's thread.
 *
 * @param loop the loop that will own its queues
 * @param a factory and arguments
 * @returns the transport shape of the model
 * @example
 * ```ts ignore
 * const spec = await iothread.call(VIRTIO_BACKEND_MODULE, "prepareVirtioBackend", a);
 * ```
 */
export async function prepareVirtioBackend(
  loop: EventLoop,
  a: PrepareVirtioArgs,
): Promise<VirtioPciSpec> {
  if (entries.has(a.id)) throw new Error(`virtio backend ${a.id} exists`);
  const mod = await importFactory(a.module);
  const f = mod[a.factory] as
    | ((args: unknown, ctx: VirtioBackendContext) => VirtioBackend | Promise<VirtioBackend>)
    | undefined;
  if (typeof f !== "function") {
    throw new TypeError(`Virtio module ${a.module} has no factory ${a.factory}`);
  }
  const backend = await f(a.args, { loop });
  entries.set(a.id, { backend, loop, fds: [] });
  return virtioPciSpecOf(backend.device);
}

/**
 * Connects a prepared model to its function and starts serving it. Writes
 * the device config, so it must finish before any vCPU runs.
 *
 * @param loop the same loop as for prepare
 * @param a memory, VM fd and the function
 * @example
 * ```ts ignore
 * await attachVirtioBackend(loop, { id, memory: mem.layout, vmFd, fn });
 * ```
 */
export async function attachVirtioBackend(loop: EventLoop, a: AttachVirtioArgs): Promise<void> {
  const e = entries.get(a.id);
  if (!e) throw new Error(`virtio backend ${a.id} was not prepared`);
  const f = a.fn;
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
    msixFd(vector: number) {
      return msixFds[vector];
    },
  };
  // The loop's instance: the guest never touches it (vCPU threads have their
  // own), so it needs no link, only the interrupt sink.
  const transport = new VirtioPciDevice(f.spec, { state: f.state, interrupt });
  const mem = GuestMemory.fromLayout(a.memory);
  const backend = new VirtioPciBackend({ transport, device: e.backend.device, mem });
  backend.attach(loop, f.notifyFds, f.controlFd);
  e.fds = [...f.notifyFds, f.controlFd];
  await e.backend.attached?.({ memory: a.memory, vmFd: a.vmFd, fn: f });
}

/** How long stopping a backend waits for its in-flight I/O. */
const STOP_TIMEOUT_MS = 10_000;

/**
 * Stops serving a function: unhooks its fds and waits (bounded) for the
 * model to release what it holds.
 *
 * @param _loop the loop (the iothread calling convention)
 * @param id the backend's key
 * @example
 * ```ts ignore
 * await stopVirtioBackend(loop, id);
 * ```
 */
export async function stopVirtioBackend(_loop: EventLoop, id: number): Promise<void> {
  const e = entries.get(id);
  if (!e) return;
  entries.delete(id);
  for (const fd of e.fds) e.loop.setFdHandler(fd, null);
  if (!e.backend.close) return;
  // A broken engine may never drain: do not let it hold the VMM's exit.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => timer = setTimeout(resolve, STOP_TIMEOUT_MS));
  await Promise.race([Promise.resolve(e.backend.close()), late]);
  clearTimeout(timer);
}
