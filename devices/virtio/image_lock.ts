/**
 * Image locking that QEMU honours: the byte-range scheme of QEMU's
 * file-posix driver (raw_apply_lock_bytes / raw_check_lock_bytes), with
 * open-file-description locks (F_OFD_SETLK), so denovmm and QEMU refuse each
 * other exactly as two QEMU processes do.
 *
 * Each block permission i (CONSISTENT_READ, WRITE, WRITE_UNCHANGED, RESIZE,
 * GRAPH_MOD) has two bytes: a shared read lock on byte 100+i says "I hold
 * permission i", one on byte 200+i says "I do not let others have it". Before
 * using an image, a process checks (F_OFD_GETLK for a write lock) that no
 * one refuses the permissions it takes and no one holds one it refuses.
 * Like a QEMU virtio-blk device (hw/block/block.c blkconf_apply_backend_options,
 * share-rw=off), denovmm takes CONSISTENT_READ (+ WRITE unless read-only)
 * and shares everything but WRITE and RESIZE: readers coexist; a writer
 * excludes everyone else, and everyone else excludes a writer.
 *
 * OFD locks belong to the open file: closing the image fd releases them,
 * and two opens in one process conflict like two processes do.
 *
 * @module
 */
import { libc } from "../../sys/libc.ts";
import { errno, ErrnoError } from "../../sys/errno.ts";

/** QEMU's RAW_LOCK_PERM_BASE: byte 100+i locked = holds permission i. */
export const RAW_LOCK_PERM_BASE = 100;
/** QEMU's RAW_LOCK_SHARED_BASE: byte 200+i locked = does not share permission i. */
export const RAW_LOCK_SHARED_BASE = 200;
/** BLK_PERM_CONSISTENT_READ. */
export const BLK_PERM_CONSISTENT_READ = 0x01;
/** BLK_PERM_WRITE. */
export const BLK_PERM_WRITE = 0x02;
/** BLK_PERM_WRITE_UNCHANGED. */
export const BLK_PERM_WRITE_UNCHANGED = 0x04;
/** BLK_PERM_RESIZE. */
export const BLK_PERM_RESIZE = 0x08;
/** BLK_PERM_GRAPH_MOD (QEMU up to 8.0; its bytes are harmless to newer ones). */
export const BLK_PERM_GRAPH_MOD = 0x10;
/** Every permission bit QEMU 7.2 locks. */
export const BLK_PERM_ALL = 0x1f;

const PERM_NAMES = ["consistent read", "write", "write unchanged", "resize", "change children"];
const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const SEEK_SET = 0;
const EINTR = 4;
// struct flock on x86-64: short l_type, short l_whence, (pad), off_t l_start,
// off_t l_len, pid_t l_pid (32 bytes).
const FLOCK_BYTES = 32;

/** The image is locked against what we asked for. */
export class ImageLockError extends Error {
  /** @param message which permission conflicts */
  constructor(message: string) {
    super(message);
    this.name = "ImageLockError";
  }
}

function fcntlLock(fd: number, cmd: number, type: number, byte: number): number {
  const b = new Uint8Array(FLOCK_BYTES);
  const v = new DataView(b.buffer);
  v.setInt16(0, type, true);
  v.setInt16(2, SEEK_SET, true);
  v.setBigInt64(8, BigInt(byte), true);
  v.setBigInt64(16, 1n, true);
  const ptr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
  for (;;) {
    if (libc.fcntl(fd, cmd, ptr) >= 0) break;
    const e = errno();
    if (e !== EINTR) throw new ErrnoError(cmd === F_OFD_GETLK ? "F_OFD_GETLK" : "F_OFD_SETLK", e);
  }
  return v.getInt16(0, true);
}

/**
 * The permissions a disk takes and those it refuses others.
 *
 * @param readOnly whether the disk is read-only
 * @returns `perm` and `shared` bit masks
 * @example
 * ```ts
 * import { diskPermissions } from "./image_lock.ts";
 * console.log(diskPermissions(false).perm); // 3: consistent read + write
 * ```
 */
export function diskPermissions(readOnly: boolean): { perm: number; shared: number } {
  return {
    perm: BLK_PERM_CONSISTENT_READ | (readOnly ? 0 : BLK_PERM_WRITE),
    shared: BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED | BLK_PERM_GRAPH_MOD,
  };
}

/**
 * Locks an open image the way QEMU does, then checks nobody conflicts.
 * On conflict the bytes just taken are released (closing the fd does too)
 * and an {@link ImageLockError} names the permission, as QEMU says
 * `Failed to get "write" lock` / `Failed to get shared "write" lock`.
 *
 * @param fd the image, open for the disk's lifetime
 * @param readOnly whether the disk is read-only
 * @example
 * ```ts ignore
 * lockImage(fd, false); // throws ImageLockError if QEMU has it open read-write
 * ```
 */
export function lockImage(fd: number, readOnly: boolean): void {
  const { perm, shared } = diskPermissions(readOnly);
  const unshared = BLK_PERM_ALL & ~shared;
  try {
    for (let i = 0; 1 << i <= BLK_PERM_ALL; i++) {
      if (perm & (1 << i)) fcntlLock(fd, F_OFD_SETLK, F_RDLCK, RAW_LOCK_PERM_BASE + i);
      if (unshared & (1 << i)) fcntlLock(fd, F_OFD_SETLK, F_RDLCK, RAW_LOCK_SHARED_BASE + i);
    }
    for (let i = 0; 1 << i <= BLK_PERM_ALL; i++) {
      if ((perm & (1 << i)) && testLock(fd, RAW_LOCK_SHARED_BASE + i)) {
        throw new ImageLockError(`Failed to get "${PERM_NAMES[i]}" lock`);
      }
    }
    for (let i = 0; 1 << i <= BLK_PERM_ALL; i++) {
      if ((unshared & (1 << i)) && testLock(fd, RAW_LOCK_PERM_BASE + i)) {
        throw new ImageLockError(`Failed to get shared "${PERM_NAMES[i]}" lock`);
      }
    }
  } catch (e) {
    unlockImage(fd);
    throw e;
  }
}

/** Whether another open file holds a lock on `byte` (a write lock would not be granted). */
function testLock(fd: number, byte: number): boolean {
  return fcntlLock(fd, F_OFD_GETLK, F_WRLCK, byte) !== F_UNLCK;
}

/**
 * Releases every lock byte this open file holds on the image.
 *
 * @param fd the image
 * @example
 * ```ts ignore
 * unlockImage(fd);
 * ```
 */
export function unlockImage(fd: number): void {
  for (let i = 0; 1 << i <= BLK_PERM_ALL; i++) {
    for (const base of [RAW_LOCK_PERM_BASE, RAW_LOCK_SHARED_BASE]) {
      try {
        fcntlLock(fd, F_OFD_SETLK, F_UNLCK, base + i);
      } catch {
        // Unlocking cannot conflict; closing the fd releases the rest.
      }
    }
  }
}
