/**
 * The blocking body of an aio `fallocate` request, shared by the pool
 * threads and the synchronous backend: fallocate(2), and with
 * AIO_FALLOC_ZERO_FALLBACK the chain QEMU's handle_aiocb_write_zeroes walks
 * (the asked mode, then FALLOC_FL_ZERO_RANGE, then writing zeros).
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { errno } from "../sys/errno.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, mmap, PROT_READ } from "../sys/fd.ts";
import { AIO_FALLOC_ZERO_FALLBACK, FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE } from "./types.ts";

const EINTR = 4;
const EINVAL = 22;
const ENOSYS = 38;
const EOPNOTSUPP = 95;
/** Bytes of zeros one pwrite sends (a page-aligned mapping, O_DIRECT safe). */
export const ZERO_CHUNK = 1 << 20;

let zeroes: Deno.PointerValue = null;

/** Whether an errno means "this file system cannot do that mode". */
export function unsupported(e: number): boolean {
  return e === EOPNOTSUPP || e === EINVAL || e === ENOSYS;
}

/** The shared read-only zero page run (mapped once per thread). */
export function zeroBuffer(): Deno.PointerValue {
  if (zeroes === null) {
    const addr = mmap(ZERO_CHUNK, { prot: PROT_READ, flags: MAP_PRIVATE | MAP_ANONYMOUS });
    zeroes = Deno.UnsafePointer.create(addr);
  }
  return zeroes;
}

function falloc(fd: number, mode: number, offset: number, len: number): number {
  for (;;) {
    if (libc.fallocate(fd, mode, BigInt(offset), BigInt(len)) >= 0) return 0;
    const e = errno();
    if (e !== EINTR) return -e;
  }
}

function writeZeroes(fd: number, offset: number, len: number): number {
  const p = zeroBuffer();
  for (let done = 0; done < len;) {
    const n = Math.min(ZERO_CHUNK, len - done);
    const w = Number(libc.pwrite_ptr(fd, p, BigInt(n), BigInt(offset + done)));
    if (w < 0) {
      const e = errno();
      if (e === EINTR) continue;
      return -e;
    }
    if (w === 0) return -5; // EIO: no progress
    done += w;
  }
  return len;
}

/**
 * Runs one `fallocate` request to the end on the calling thread.
 *
 * @param fd the file
 * @param mode FALLOC_FL_* bits, plus AIO_FALLOC_ZERO_FALLBACK
 * @param offset first byte
 * @param len bytes
 * @returns len, or -errno
 * @example
 * ```ts ignore
 * runFallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
 * ```
 */
export function runFallocate(fd: number, mode: number, offset: number, len: number): number {
  const fallback = (mode & AIO_FALLOC_ZERO_FALLBACK) !== 0;
  const m = mode & ~AIO_FALLOC_ZERO_FALLBACK;
  let r = falloc(fd, m, offset, len);
  if (r === 0) return len;
  if (!fallback || !unsupported(-r)) return r;
  const zeroRange = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
  if (m !== zeroRange) {
    r = falloc(fd, zeroRange, offset, len);
    if (r === 0) return len;
    if (!unsupported(-r)) return r;
  }
  return writeZeroes(fd, offset, len);
}
