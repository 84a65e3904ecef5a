/**
 * Disks: the virtio-blk device model as a factory the builder runs on the
 * loop that owns the queue (the main loop, or an iothread with
 * `iothread=N`), where it gets its aio engine. The images are opened and
 * locked before the VM exists (disk_open.ts), so a user's mistake is one
 * line; this module and the aio pool load only for a VM with a disk.
 *
 * @module
 */
import { VirtioBlock } from "../devices/virtio/block.ts";
import { SyncAio } from "../devices/virtio/sync_io.ts";
import { acquireAio } from "../aio/pool_registry.ts";
import { PageCacheInline } from "../aio/page_cache_inline.ts";
import type { VirtioBackend, VirtioBackendContext } from "../vm/virtio_backend.ts";

export { DiskError, DISKS_MODULE, openDisks, type OpenedDisk } from "./disk_open.ts";

/** Arguments of {@link virtioBlockBackend}, postMessage-able. */
export interface VirtioBlockBackendArgs {
  /** The open image. */
  disk: { fd: number; size: number; readOnly: boolean };
  /** Serial for GET_ID. */
  serial?: string;
  /** Which aio engine (`sync`: inline on the loop, for tests and benchmarks). */
  aio: "threads" | "io_uring" | "sync";
  /** Request queues (default 1). */
  numQueues?: number;
}

/**
 * The virtio-blk model with its aio engine, built on the loop that owns
 * its queue (a `VirtioBackendFactory`).
 *
 * @param args the image and engine
 * @param ctx the loop
 * @returns the model and how to close its engine
 * @example
 * ```ts ignore
 * const blk = { module: DISKS_MODULE, factory: "virtioBlockBackend", args };
 * ```
 */
export function virtioBlockBackend(
  args: VirtioBlockBackendArgs,
  ctx: VirtioBackendContext,
): VirtioBackend {
  // One engine per loop and kind, shared by its disks (QEMU: one per AioContext).
  const aio = args.aio === "sync" ? null : acquireAio(ctx.loop, args.aio);
  // What the host's page cache holds is served on this loop, the rest by
  // the engine (aio/page_cache_inline.ts).
  const inline = aio ? new PageCacheInline(aio.backend, args.disk.fd, { loop: ctx.loop }) : null;
  const device = new VirtioBlock({
    disk: args.disk,
    aio: inline ?? new SyncAio(),
    serial: args.serial,
    numQueues: args.numQueues,
    // A kick handles a bounded batch, then yields to this loop.
    loop: ctx.loop,
  });
  return {
    device,
    close: () => {
      inline?.close();
      return aio?.release();
    },
  };
}
