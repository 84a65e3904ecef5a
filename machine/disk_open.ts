/**
 * `--disk` on the main thread: images parsed, opened and locked before the
 * VM exists, so a user's mistake is one line. The device model and the aio
 * pool (disks.ts) load only on the loop that owns a disk's queues: a VM
 * without a disk never loads them.
 *
 * @module
 */
import { ErrnoError } from "../sys/errno.ts";
import {
  type DiskFile,
  type DiskOptions,
  openDisk,
  parseDiskOption,
} from "../devices/virtio/disk_file.ts";
import { ioUringAvailable } from "../aio/io_uring.ts";

/** The module whose `virtioBlockBackend` builds a disk's device model (disks.ts). */
export const DISKS_MODULE: string = new URL("./disks.ts", import.meta.url).href;

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
