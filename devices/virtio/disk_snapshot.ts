/**
 * `snapshot=on` (QEMU's `-snapshot`): the guest's writes go to a temporary
 * copy of the image, never to the image itself, and vanish when the VMM
 * exits - what a test harness wants from a golden image. QEMU puts a qcow2
 * overlay in front of the image; denovmm's disks are raw files served by
 * `preadv`/`pwritev` straight into guest RAM, so the copy is a raw file
 * too: an unlinked file (`O_TMPFILE`) in `$TMPDIR` (else `/var/tmp`, as
 * QEMU, or `/tmp` without one), as sparse as the image (only its data extents are copied, found
 * with `SEEK_DATA`/`SEEK_HOLE`), by `copy_file_range` (the kernel copies,
 * or shares the blocks where the file system can reflink them; a plain
 * read/write loop where it cannot). Its cost is the image's data, once, at
 * start; nothing is left behind however the VMM ends.
 *
 * @module
 */
import { libc } from "../../sys/libc.ts";
import { errno, ErrnoError } from "../../sys/errno.ts";
import { closeFd, cstring, O_CLOEXEC, O_RDWR } from "../../sys/fd.ts";
import { viewAddress } from "../../sys/address.ts";

const O_DIRECTORY = 0o200000;
const O_TMPFILE = 0o20000000 | O_DIRECTORY;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;
const SYS_copy_file_range = 326n;
/** A copy of this much data is announced on stderr. */
const SAY_COPY_BYTES = 1 << 30;

/**
 * Where the temporary copy may go: `$TMPDIR` when set, else `/var/tmp`
 * (QEMU's choice for -snapshot: disk-backed), then `/tmp` (a minimal
 * system, an initramfs, has no `/var/tmp`).
 */
function temporaryDirs(): string[] {
  const p = libc.getenv(cstring("TMPDIR"));
  const dir = p === null ? "" : Deno.UnsafePointerView.getCString(p);
  return dir ? [dir] : ["/var/tmp", "/tmp"];
}

/** Copies `len` bytes at `off` between the files: copy_file_range, else pread/pwrite. */
function copyRange(from: number, to: number, off: number, len: number): void {
  // loff_t in and out, which the kernel advances.
  const offs = new BigInt64Array([BigInt(off), BigInt(off)]);
  const offIn = viewAddress(offs);
  const offOut = offIn + 8n;
  let done = 0;
  while (done < len) {
    const n = Number(libc.syscall(
      SYS_copy_file_range,
      BigInt(from),
      offIn,
      BigInt(to),
      offOut,
      BigInt(Math.min(len - done, 1 << 30)),
      0n,
    ));
    if (n > 0) {
      done += n;
      continue;
    }
    if (n === 0) throw new Error(`the image ended at ${off + done} bytes while being copied`);
    // Across file systems on older kernels (EXDEV), or where it is not offered: read and write.
    const e = errno();
    if (e === 4) continue; // EINTR
    break;
  }
  const buf = new Uint8Array(Math.min(len - done, 1 << 20) || 1);
  while (done < len) {
    const want = Math.min(len - done, buf.length);
    const r = Number(libc.pread(from, buf, BigInt(want), BigInt(off + done)));
    if (r < 0) {
      if (errno() === 4) continue;
      throw new ErrnoError("pread", errno());
    }
    if (r === 0) throw new Error(`the image ended at ${off + done} bytes while being copied`);
    for (let w = 0; w < r;) {
      const k = Number(libc.pwrite(to, buf.subarray(w, r), BigInt(r - w), BigInt(off + done + w)));
      if (k < 0) {
        if (errno() === 4) continue;
        throw new ErrnoError("pwrite", errno());
      }
      w += k;
    }
    done += r;
  }
}

/**
 * The data extents of a file: `[offset, length]` pairs, holes left out.
 * A file (or device) that cannot say is one extent of its whole size.
 *
 * @param fd the image
 * @param size its size
 * @returns the extents, in order
 */
export function dataExtents(fd: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  let at = 0;
  while (at < size) {
    const data = Number(libc.lseek(fd, BigInt(at), SEEK_DATA));
    if (data < 0) {
      if (errno() === ENXIO) break; // only a hole is left
      return [[0, size]]; // no SEEK_DATA here: all of it
    }
    const hole = Math.min(Number(libc.lseek(fd, BigInt(data), SEEK_HOLE)), size);
    if (hole <= data) return [[0, size]];
    out.push([data, hole - data]);
    at = hole;
  }
  return out;
}

/**
 * A temporary, unlinked copy of an open image, as sparse as the image.
 *
 * @param base the image, open for reading
 * @param size its size
 * @param path its path, for messages
 * @returns the copy, open read-write (close it to discard it)
 * @throws Error naming the image and the problem (no room, no temporary directory)
 */
export function temporaryCopy(base: number, size: number, path: string): number {
  let fd = -1;
  let dir = "";
  let why = "";
  for (dir of temporaryDirs()) {
    fd = libc.open(cstring(dir), O_TMPFILE | O_RDWR | O_CLOEXEC, 0o600);
    if (fd >= 0) break;
    why = new ErrnoError("open", errno()).code;
  }
  if (fd < 0) {
    throw new Error(`snapshot=on for ${path}: no temporary file in ${dir} (${why}; set TMPDIR)`);
  }
  try {
    if (libc.ftruncate(fd, BigInt(size)) < 0) throw new ErrnoError("ftruncate", errno());
    const extents = dataExtents(base, size);
    const data = extents.reduce((n, [, len]) => n + len, 0);
    // Seconds of copying before the guest starts deserve a line (reflinks take none).
    if (data >= SAY_COPY_BYTES) {
      console.error(
        `denovmm: snapshot=on: copying ${Math.round(data / 2 ** 20)} MiB of ${path} into ${dir}`,
      );
    }
    for (const [off, len] of extents) copyRange(base, fd, off, len);
    return fd;
  } catch (e) {
    closeFd(fd);
    throw new Error(`snapshot=on for ${path}: copying into ${dir} failed: ${(e as Error).message}`);
  }
}
