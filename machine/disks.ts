/**
 * Disks: images opened and locked before the VM exists (a user's mistake
 * is one line), and the virtio-blk device model as a factory the builder
 * runs on the loop that owns the queue (the main loop, or an iothread with
 * `iothread=N`), where it gets its aio engine.
 *
 * @module
 */
import { ErrnoError } from "../sys/errno.ts";
import { VirtioBlock } from "../devices/virtio/block.ts";
import {
  type DiskFile,
  type DiskOptions,
  openDisk,
  parseDiskOption,
} from "../devices/virtio/disk_file.ts";
import { SyncAio } from "../devices/virtio/sync_io.ts";
import { ioUringAvailable } from "../aio/io_uring.ts";
import { acquireAio } from "../aio/pool_registry.ts";
import type { VirtioBackend, VirtioBackendContext } from "../vm/virtio_backend.ts";

/** A disk the user cannot have (missing, no permission, locked, odd size, bad option). */
export class DiskError extends Error {
  /** @param message one line naming the image and the problem */
  constructor(message: string) {
    super(message);
    this.name = "DiskError";
  }
}

/** A parsed and opened `--disk`. */
export interface OpenedDisk {
  /** What the user asked for. */
  options: DiskOptions;
  /** The open, locked image. */
  file: DiskFile;
}

/**
 * Parses and opens every `--disk` value before the VM exists, so a user's
 * mistake ends with one line. On failure nothing stays open.
 *
 * @param values the option strings, in order
 * @returns the open disks
 * @throws DiskError naming the image and the problem
 * @example
 * ```ts ignore
 * const disks = openDisks(["disk.img,aio=io_uring"]);
 * ```
 */
export function openDisks(values: readonly (string | DiskOptions)[]): OpenedDisk[] {
  const out: OpenedDisk[] = [];
  try {
    for (const value of values) {
      let options: DiskOptions;
      try {
        options = typeof value === "string" ? parseDiskOption(value) : value;
      } catch (e) {
        throw new DiskError(`Invalid --disk '${value}': ${(e as Error).message}`);
      }
      if (options.aio === "io_uring") {
        const why = ioUringAvailable();
        if (why !== null) {
          throw new DiskError(
            `Disk image ${options.path}: io_uring is not available (${why}); use aio=threads`,
          );
        }
      }
      try {
        out.push({ options, file: openDisk(options) });
      } catch (e) {
        if (e instanceof ErrnoError) {
          const why = e.code === "EISDIR" ? "it is a directory" : e.description;
          throw new DiskError(`Cannot open disk image ${options.path}: ${why}`);
        }
        throw new DiskError((e as Error).message);
      }
    }
  } catch (e) {
    for (const d of out) d.file.close();
    throw e;
  }
  return out;
}

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
  const device = new VirtioBlock({
    disk: args.disk,
    aio: aio?.backend ?? new SyncAio(),
    serial: args.serial,
    numQueues: args.numQueues,
    // A kick handles a bounded batch, then yields to this loop.
    loop: ctx.loop,
  });
  return { device, close: () => aio?.release() };
}

/** This module's URL, for the builder's factory specs. */
export const DISKS_MODULE: string = new URL(import.meta.url).href;
