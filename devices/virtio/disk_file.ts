/**
 * Opening a disk image for virtio-blk from a `--disk` option: flags, the
 * locks QEMU uses (so neither QEMU nor another denovmm writes an image we
 * use, and we never write one they use), a size check, and
 * one-line errors a user can act on.
 *
 * @module
 */
import { libc } from "../../sys/libc.ts";
import {
  EACCES,
  EINVAL,
  ENOENT,
  EPERM,
  EROFS,
  errno,
  ErrnoError,
  EWOULDBLOCK,
} from "../../sys/errno.ts";
import {
  closeFd,
  cstring,
  fileSize,
  fstat,
  O_CLOEXEC,
  O_DIRECT,
  O_RDONLY,
  O_RDWR,
  S_IFBLK,
  S_IFMT,
  S_IFREG,
} from "../../sys/fd.ts";
import { type BlockDisk, VIRTIO_BLK_MAX_QUEUES } from "./block.ts";
import { ImageLockError, lockImage } from "./image_lock.ts";
import { temporaryCopy } from "./disk_snapshot.ts";

/**
 * Parsed `--disk path[,ro][,aio=threads|io_uring][,iothread=N][,cache=none|writeback][,serial=S]
 * [,num-queues=N][,snapshot=on]`.
 */
export interface DiskOptions {
  /** Image path. */
  path: string;
  /** Open read-only. */
  readOnly: boolean;
  /** Which aio backend serves it. */
  aio: "threads" | "io_uring";
  /** Which iothread runs its queue (undefined: the main loop). */
  iothread?: number;
  /** `none` opens with O_DIRECT (bypassing the host page cache). */
  cache: "none" | "writeback";
  /** Serial number for GET_ID. */
  serial?: string;
  /** Request queues (QEMU's virtio-blk-pci `num-queues`; undefined: one per vCPU). */
  numQueues?: number;
  /** Writes go to a temporary copy, not the image (QEMU's `-snapshot`; disk_snapshot.ts). */
  snapshot?: boolean;
}

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;

/**
 * Parses a `--disk` value.
 *
 * @param value e.g. `disk.img,ro,aio=io_uring,cache=none`
 * @returns the options
 * @example
 * ```ts
 * import { parseDiskOption } from "./disk_file.ts";
 * console.log(parseDiskOption("a.img,ro,iothread=1").iothread); // 1
 * ```
 */
export function parseDiskOption(value: string): DiskOptions {
  const parts = value.split(",");
  const path = parts[0];
  if (!path) throw new TypeError("Disk option needs a path");
  const out: DiskOptions = { path, readOnly: false, aio: "threads", cache: "writeback" };
  for (const p of parts.slice(1)) {
    const eq = p.indexOf("=");
    const key = eq < 0 ? p : p.slice(0, eq);
    const val = eq < 0 ? "" : p.slice(eq + 1);
    switch (key) {
      case "ro":
      case "readonly":
        if (val !== "" && val !== "on" && val !== "off") {
          throw new TypeError(`Invalid ro value ${val}`);
        }
        out.readOnly = val !== "off";
        break;
      case "aio":
        if (val !== "threads" && val !== "io_uring") {
          throw new TypeError(`Invalid disk aio ${JSON.stringify(val)}: use threads or io_uring`);
        }
        out.aio = val;
        break;
      case "iothread": {
        const n = Number(val);
        if (val === "" || !Number.isInteger(n) || n < 0) {
          throw new TypeError(`Invalid iothread ${val}`);
        }
        out.iothread = n;
        break;
      }
      case "cache":
        if (val !== "none" && val !== "writeback") {
          throw new TypeError(`Invalid disk cache ${JSON.stringify(val)}: use none or writeback`);
        }
        out.cache = val;
        break;
      case "num-queues":
      case "num_queues": {
        const n = Number(val);
        if (val === "" || !Number.isInteger(n) || n < 1 || n > VIRTIO_BLK_MAX_QUEUES) {
          throw new TypeError(`Invalid num-queues ${val}: use 1 to ${VIRTIO_BLK_MAX_QUEUES}`);
        }
        out.numQueues = n;
        break;
      }
      case "snapshot":
        if (val !== "" && val !== "on" && val !== "off") {
          throw new TypeError(`Invalid snapshot value ${val}: use on or off`);
        }
        out.snapshot = val !== "off";
        break;
      case "serial":
        if (new TextEncoder().encode(val).length > 20) {
          throw new TypeError("Disk serial is longer than 20 bytes");
        }
        out.serial = val;
        break;
      default:
        throw new TypeError(`Unknown disk option ${JSON.stringify(key)}`);
    }
  }
  return out;
}

/** An open, locked disk image. */
export interface DiskFile extends BlockDisk {
  /** The image path. */
  readonly path: string;
  /** Whether it was opened with O_DIRECT. */
  readonly direct: boolean;
  /** Closes it (releasing the lock). */
  close(): void;
}

/**
 * Opens and locks a disk image. Errors are one line naming the path and
 * the problem (missing, permission, in use, odd size, O_DIRECT unsupported).
 *
 * @param options from {@link parseDiskOption}
 * @returns the open disk
 * @example
 * ```ts ignore
 * const disk = openDisk(parseDiskOption("disk.img,cache=none"));
 * ```
 */
export function openDisk(options: DiskOptions): DiskFile {
  const { path } = options;
  // snapshot=on: the image is only read (shared lock), its copy written.
  const snapshot = options.snapshot === true && !options.readOnly;
  const readOnly = options.readOnly || snapshot;
  // The temporary copy is served through the page cache: it never outlives the VMM.
  const direct = options.cache === "none" && !snapshot;
  const flags = (readOnly ? O_RDONLY : O_RDWR) | (direct ? O_DIRECT : 0) | O_CLOEXEC;
  const fd = libc.open(cstring(path), flags, 0);
  if (fd < 0) {
    const e = errno();
    if (e === ENOENT) throw new Error(`Disk image ${path} does not exist`);
    if (e === EACCES || e === EPERM) {
      throw new Error(`No permission to open disk image ${path}${readOnly ? "" : " read-write"}`);
    }
    if (e === EROFS) throw new Error(`Disk image ${path} is on a read-only file system: add ,ro`);
    if (e === EINVAL && direct) {
      throw new Error(`Disk image ${path} does not support cache=none (O_DIRECT)`);
    }
    throw new ErrnoError(`open ${path}`, e);
  }
  try {
    const st = fstat(fd);
    const type = st.mode & S_IFMT;
    if (type !== S_IFREG && type !== S_IFBLK) {
      throw new Error(`Disk image ${path} is not a regular file or block device`);
    }
    const inUse = (why: string) =>
      new Error(
        `Disk image ${path} is in use by another process` +
          (readOnly ? " that opened it read-write" : "") + ` (${why})`,
      );
    // QEMU's byte-range locks, so QEMU and denovmm refuse each other (image_lock.ts),
    // and a whole-file flock for tools that use flock(1).
    try {
      lockImage(fd, readOnly);
    } catch (e) {
      if (e instanceof ImageLockError) throw inUse(e.message);
      throw e;
    }
    if (libc.flock(fd, (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
      const e = errno();
      if (e === EWOULDBLOCK) throw inUse("flock");
      throw new ErrnoError(`flock ${path}`, e);
    }
    const size = type === S_IFBLK ? fileSize(fd) : st.size;
    if (size % 512 !== 0) {
      throw new Error(`Disk image ${path} size ${size} is not a multiple of 512 bytes`);
    }
    // snapshot=on: the copy is what the guest reads and writes; the image is let go.
    const served = snapshot ? temporaryCopy(fd, size, path) : fd;
    if (served !== fd) closeFd(fd);
    return {
      path,
      fd: served,
      size,
      readOnly: readOnly && !snapshot,
      direct,
      close() {
        closeFd(served);
      },
    };
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}
