/**
 * File-descriptor helpers over libc: open, close, eventfd, memfd, mmap.
 *
 * @module
 */
import { libc, readI32, writeI32 } from "./libc.ts";
import { check, checkBig, errno, ErrnoError } from "./errno.ts";

/** open(2) flags (x86-64 values). */
export const O_RDONLY = 0;
/** Open for writing only. */
export const O_WRONLY = 1;
/** Open for reading and writing. */
export const O_RDWR = 2;
/** Create the file if missing. */
export const O_CREAT = 0o100;
/** Fail if the file exists (with O_CREAT). */
export const O_EXCL = 0o200;
/** Do not make the device the controlling terminal. */
export const O_NOCTTY = 0o400;
/** Truncate to zero length. */
export const O_TRUNC = 0o1000;
/** Append on each write. */
export const O_APPEND = 0o2000;
/** Non-blocking I/O. */
export const O_NONBLOCK = 0o4000;
/** Bypass the page cache. */
export const O_DIRECT = 0o40000;
/** Close on exec. */
export const O_CLOEXEC = 0o2000000;

const encoder = new TextEncoder();

/**
 * A NUL-terminated copy of a string, for `buffer` FFI parameters.
 *
 * @param s the string
 * @returns its UTF-8 bytes followed by a 0
 */
export function cstring(s: string): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(encoder.encode(s).length + 1);
  encoder.encodeInto(s, b);
  return b;
}

/**
 * open(2); throws ErrnoError("open PATH", errno) on failure.
 *
 * @param path file path
 * @param flags O_* flags (O_CLOEXEC is always added)
 * @param mode permission bits for O_CREAT
 * @returns the file descriptor
 * @example
 * ```ts
 * import { openFile, closeFd, O_RDONLY } from "./fd.ts";
 * const fd = openFile("/dev/null", O_RDONLY);
 * closeFd(fd);
 * ```
 */
export function openFile(path: string, flags: number, mode = 0o644): number {
  const fd = libc.open(cstring(path), flags | O_CLOEXEC, mode);
  if (fd < 0) throw new ErrnoError(`open ${path}`, errno());
  return fd;
}

/**
 * close(2), ignoring EINTR as Linux does (the fd is released regardless).
 *
 * @param fd the descriptor to close
 */
export function closeFd(fd: number): void {
  libc.close(fd);
}

/** eventfd(2) flags. */
export const EFD_CLOEXEC = 0o2000000;
/** Non-blocking eventfd. */
export const EFD_NONBLOCK = 0o4000;

/**
 * A new non-blocking, close-on-exec eventfd.
 *
 * @param initval initial counter value
 * @returns the eventfd
 */
export function eventFd(initval = 0): number {
  return check("eventfd", libc.eventfd(initval, EFD_CLOEXEC | EFD_NONBLOCK));
}

const eventBuf = new BigUint64Array(1);
const eventBytes = new Uint8Array(eventBuf.buffer);

/**
 * Adds 1 (or n) to an eventfd's counter, waking its pollers.
 *
 * @param fd the eventfd
 * @param n amount to add
 */
export function eventFdWrite(fd: number, n = 1n): void {
  eventBuf[0] = n;
  writeI32(fd, eventBytes, 8); // i32 result: no BigInt per wake-up
}

/**
 * Reads and clears an eventfd's counter; 0 when it was already clear.
 *
 * @param fd a non-blocking eventfd
 * @returns the counter value before clearing
 */
export function eventFdRead(fd: number): bigint {
  eventBuf[0] = 0n;
  return readI32(fd, eventBytes, 8) === 8 ? eventBuf[0] : 0n;
}

// The counter as two 32-bit words: no BigInt on the hot paths below.
const drainBytes = new Uint8Array(8);
const drainWords = new Uint32Array(drainBytes.buffer);

/**
 * Clears an eventfd's counter, allocating nothing (a queue kick, a
 * completion, a loop wake-up: once per event on hot paths).
 *
 * @param fd a non-blocking eventfd
 * @returns whether the counter was set
 */
export function eventFdDrain(fd: number): boolean {
  drainWords[0] = 0;
  drainWords[1] = 0;
  return readI32(fd, drainBytes, 8) === 8;
}

/**
 * A pipe, both ends close-on-exec.
 *
 * @param nonblock make both ends non-blocking
 * @returns [read end, write end]
 */
export function pipe(nonblock = false): [number, number] {
  const fds = new Int32Array(2);
  check(
    "pipe2",
    libc.pipe2(new Uint8Array(fds.buffer), O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)),
  );
  return [fds[0], fds[1]];
}

const SYS_pread64 = 17n;
const SYS_pwrite64 = 18n;

/**
 * pread(2) or pwrite(2) of a whole range at a host address, on Deno's
 * blocking pool (the calling thread's event loop turns meanwhile), a call
 * per short transfer. The memory must stay mapped until it settles. The
 * pool thread's errno is not the caller's to read: any failure, or end of
 * file, is false.
 *
 * @param op which transfer
 * @param fd the file
 * @param addr host address of the first byte
 * @param length bytes to move
 * @param offset file offset of the first byte
 * @returns whether every byte moved
 * @example
 * ```ts ignore
 * const ok = await transferAllOnPool("pread", fd, addr, size, 0);
 * ```
 */
export async function transferAllOnPool(
  op: "pread" | "pwrite",
  fd: number,
  addr: bigint,
  length: number,
  offset: number,
): Promise<boolean> {
  const nr = op === "pread" ? SYS_pread64 : SYS_pwrite64;
  let done = 0;
  while (done < length) {
    const n = Number(
      await libc.syscall_nb(
        nr,
        BigInt(fd),
        addr + BigInt(done),
        BigInt(length - done),
        BigInt(offset + done),
        0n,
        0n,
      ),
    );
    if (n <= 0) return false;
    done += n;
  }
  return true;
}

/**
 * write(2) of a whole buffer, retrying short writes and EINTR/EAGAIN.
 *
 * @param fd destination
 * @param data bytes to write
 */
export function writeAll(fd: number, data: Uint8Array<ArrayBuffer>): void {
  let off = 0;
  while (off < data.length) {
    const chunk = off === 0 ? data : data.subarray(off);
    const n = Number(libc.write(fd, chunk, BigInt(chunk.length)));
    if (n < 0) {
      const e = errno();
      if (e === 4 || e === 11) continue;
      throw new ErrnoError("write", e);
    }
    off += n;
  }
}

/**
 * read(2) into a buffer; returns bytes read, or -errno.
 *
 * @param fd source
 * @param buf destination
 * @returns bytes read (0 at EOF), or a negative errno
 */
export function readInto(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  const n = Number(libc.read(fd, buf, BigInt(buf.length)));
  return n < 0 ? -errno() : n;
}

/**
 * The struct stat fields the project uses (x86-64 layout, 144 bytes). Device
 * and inode numbers and times fit in 2^53 on Linux, so they are numbers.
 */
export interface FileStat {
  /** Device holding the file (st_dev). */
  dev: number;
  /** Inode number. */
  ino: number;
  /** File type and mode bits. */
  mode: number;
  /** Device number of a device file. */
  rdev: bigint;
  /** Size in bytes. */
  size: number;
  /** 512-byte blocks allocated (st_blocks). */
  blocks: number;
  /** Last modification (st_mtim): seconds and nanoseconds. */
  mtimeSec: number;
  /** Nanoseconds of {@link FileStat.mtimeSec}. */
  mtimeNsec: number;
  /** Last status change (st_ctim): seconds and nanoseconds. */
  ctimeSec: number;
  /** Nanoseconds of {@link FileStat.ctimeSec}. */
  ctimeNsec: number;
}

/** S_IFMT mask and file types. */
export const S_IFMT = 0o170000;
/** Regular file. */
export const S_IFREG = 0o100000;
/** Block device. */
export const S_IFBLK = 0o60000;
/** Directory. */
export const S_IFDIR = 0o40000;

/** fstatat(2) dirfd meaning the working directory. */
export const AT_FDCWD = -100;
/** fstatat(2) flag: a symbolic link's own stat, not its target's. */
export const AT_SYMLINK_NOFOLLOW = 0x100;

/** The one struct stat buffer the calls below fill and decode at once. */
const statBuf = new Uint8Array(144);
const statView = new DataView(statBuf.buffer);

/** An unsigned 64-bit field of {@link statBuf} as a number (each one here is < 2^53). */
function statField(off: number): number {
  return statView.getUint32(off, true) + statView.getUint32(off + 4, true) * 2 ** 32;
}

/** The fields of the struct stat last filled into {@link statBuf}. */
function decodeStat(): FileStat {
  return {
    dev: statField(0),
    ino: statField(8),
    mode: statView.getUint32(24, true),
    rdev: statView.getBigUint64(40, true),
    size: statField(48),
    blocks: statField(64),
    mtimeSec: statField(88),
    mtimeNsec: statField(96),
    ctimeSec: statField(104),
    ctimeNsec: statField(112),
  };
}

/**
 * fstat(2).
 *
 * @param fd an open descriptor
 * @returns its {@link FileStat}
 * @throws ErrnoError when the call fails
 */
export function fstat(fd: number): FileStat {
  check("fstat", libc.fstat(fd, statBuf));
  return decodeStat();
}

/**
 * fstatat(2) of a path (relative paths from the working directory), without
 * opening it: a stat never waits on a FIFO as an open to read would.
 *
 * @param path the file
 * @param flags 0 (follow a symbolic link) or {@link AT_SYMLINK_NOFOLLOW}
 * @returns its {@link FileStat}, or undefined where the call failed (errno() says why)
 * @example
 * ```ts ignore
 * const st = statAt("/boot/vmlinuz");
 * if (st && (st.mode & S_IFMT) === S_IFREG) console.log(st.size);
 * ```
 */
export function statAt(path: string, flags = 0): FileStat | undefined {
  return libc.fstatat(AT_FDCWD, cstring(path), statBuf, flags) === 0 ? decodeStat() : undefined;
}

/**
 * The size of an open file or block device (lseek to the end).
 *
 * @param fd an open descriptor
 * @returns size in bytes
 */
export function fileSize(fd: number): number {
  const size = checkBig("lseek", libc.lseek(fd, 0n, 2));
  libc.lseek(fd, 0n, 0);
  return size;
}

/** mmap/mprotect protection: no access. */
export const PROT_NONE = 0;
/** mmap protections and flags. */
export const PROT_READ = 1;
/** Writable mapping. */
export const PROT_WRITE = 2;
/** Executable mapping. */
export const PROT_EXEC = 4;
/** Shared mapping. */
export const MAP_SHARED = 1;
/** Private mapping. */
export const MAP_PRIVATE = 2;
/** Anonymous mapping. */
export const MAP_ANONYMOUS = 0x20;
/** Do not reserve swap. */
export const MAP_NORESERVE = 0x4000;
/** Populate page tables now. */
export const MAP_POPULATE = 0x8000;

const MAP_FAILED = 0xffffffffffffffffn;

/**
 * mmap(2).
 *
 * @param length bytes to map
 * @param options protection, flags, fd and offset
 * @returns the mapping's address
 */
export function mmap(
  length: number,
  options: { prot: number; flags: number; fd?: number; offset?: number },
): bigint {
  const p = libc.mmap(
    null,
    BigInt(length),
    options.prot,
    options.flags,
    options.fd ?? -1,
    BigInt(options.offset ?? 0),
  );
  const addr = p === null ? 0n : BigInt(Deno.UnsafePointer.value(p));
  if (addr === MAP_FAILED || addr === 0n) throw new ErrnoError("mmap", errno());
  return addr;
}

/**
 * munmap(2).
 *
 * @param addr mapping address
 * @param length mapping length
 */
export function munmap(addr: bigint, length: number): void {
  check("munmap", libc.munmap(Deno.UnsafePointer.create(addr), BigInt(length)));
}

/** madvise(2): drop the pages (private anonymous memory then reads zeros). */
export const MADV_DONTNEED = 4;
/** madvise(2): leave the range out of a forked child. */
export const MADV_DONTFORK = 10;
/** madvise(2) (Linux 5.14): fault the range in, writable, in one call. */
export const MADV_POPULATE_WRITE = 23;
const PAGE_SIZE = 4096;

/**
 * madvise(2) on the whole pages inside `view` (the partial pages at its ends
 * are left alone).
 *
 * @param view host memory (a mapping's view)
 * @param advice an `MADV_*` value
 * @returns the offsets in `view` of the pages advised, or undefined where it
 *   holds no whole page or the kernel refused the advice
 */
export function madviseWholePages(
  view: Uint8Array,
  advice: number,
): { start: number; end: number } | undefined {
  const addr = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(view)));
  const first = Math.ceil(addr / PAGE_SIZE) * PAGE_SIZE;
  const last = Math.floor((addr + view.length) / PAGE_SIZE) * PAGE_SIZE;
  if (last <= first) return undefined;
  const r = libc.madvise(Deno.UnsafePointer.create(BigInt(first)), BigInt(last - first), advice);
  return r === 0 ? { start: first - addr, end: last - addr } : undefined;
}

/** memfd_create flags. */
export const MFD_CLOEXEC = 1;

/**
 * An anonymous shared-memory file of the given size.
 *
 * @param name name shown in /proc/PID/fd
 * @param size bytes
 * @returns the memfd
 */
export function memfd(name: string, size: number): number {
  const fd = check("memfd_create", libc.memfd_create(cstring(name), MFD_CLOEXEC));
  check("ftruncate", libc.ftruncate(fd, BigInt(size)));
  return fd;
}

/**
 * An ArrayBuffer over host memory at addr, without copying.
 *
 * @param addr host address (from mmap)
 * @param length bytes
 * @returns an ArrayBuffer that aliases that memory
 */
export function hostBuffer(addr: bigint, length: number): ArrayBuffer {
  const p = Deno.UnsafePointer.create(addr);
  if (p === null) throw new RangeError("Null host address");
  return Deno.UnsafePointerView.getArrayBuffer(p, length);
}

/** What a file mode's type bits name, as the user would say it. */
function fileTypeName(mode: number): string {
  switch (mode & S_IFMT) {
    case 0o10000:
      return "a FIFO";
    case 0o20000:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case 0o140000:
      return "a socket";
    default:
      return "not a regular file";
  }
}

/**
 * A file that must be a regular file is something else (a FIFO, a device).
 *
 * @example
 * ```ts
 * import { FileTypeError } from "./fd.ts";
 * const e = new FileTypeError("/dev/null", "a character device");
 * console.log(e.message);
 * ```
 */
export class FileTypeError extends Error {
  /** What the file is, e.g. "a FIFO". */
  readonly fileType: string;

  /**
   * @param path the file
   * @param fileType what it is
   */
  constructor(path: string, fileType: string) {
    super(`${path} is ${fileType}, not a regular file`);
    this.name = "FileTypeError";
    this.fileType = fileType;
  }
}

/**
 * Reads a whole regular file through libc (no Deno read permission needed:
 * the VMM reads kernels and initrds the way QEMU does, with open/read).
 * The open is non-blocking, so a FIFO or a device cannot hold it up; what
 * is not a regular file is refused before any read.
 *
 * @param path file path
 * @param maxBytes refuse files larger than this
 * @param options `alloc`: where the contents go (memory of the file's size;
 *   default a new Uint8Array on V8's heap); `opened`: called with the open
 *   fd and its {@link FileStat} before the read (a cache marks a hit there)
 * @returns the contents
 * @throws ErrnoError (EISDIR for a directory), FileTypeError for a FIFO,
 *   device or socket, RangeError when larger than maxBytes
 */
export function readFileFfi(
  path: string,
  maxBytes = 2 ** 32,
  options: {
    alloc?: (size: number) => Uint8Array<ArrayBuffer>;
    opened?: (fd: number, st: FileStat) => void;
  } = {},
): Uint8Array<ArrayBuffer> {
  const fd = openFile(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  try {
    const st = fstat(fd);
    if ((st.mode & S_IFMT) === S_IFDIR) throw new ErrnoError(`read ${path}`, 21);
    if ((st.mode & S_IFMT) !== S_IFREG) throw new FileTypeError(path, fileTypeName(st.mode));
    options.opened?.(fd, st);
    if (st.size > maxBytes) {
      throw new RangeError(`${path} is too large (${st.size} bytes, at most ${maxBytes})`);
    }
    const buf = options.alloc ? options.alloc(st.size) : new Uint8Array(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = Number(libc.read(fd, buf.subarray(off), BigInt(buf.length - off)));
      if (n < 0) {
        const e = errno();
        if (e === 4) continue;
        throw new ErrnoError(`read ${path}`, e);
      }
      if (n === 0) break;
      off += n;
    }
    return off === buf.length ? buf : buf.slice(0, off);
  } finally {
    closeFd(fd);
  }
}
