/**
 * The project's only `Deno.dlopen`: the libc calls the VMM makes.
 *
 * Every other module reaches the kernel through these symbols, so the FFI
 * surface can be audited in one place. Each Worker that imports this module
 * opens its own handle (dlopen is per isolate, the library is shared).
 *
 * Variadic functions (`ioctl`, `open`, `syscall`, `prctl`, `fcntl`) are
 * declared with fixed integer/pointer arguments: on x86-64 System V, variadic
 * integer arguments travel in the same registers as fixed ones.
 *
 * Binding a symbol costs its isolate ~0.2-0.4 ms (V8 makes it a function
 * with a fast-call trampoline), so cold calls that are one x86-64 system call
 * each ({@link LIBC_VIA_SYSCALL}) are served through `syscall()`, bound once,
 * with the same arguments, results and errno as their glibc wrappers.
 *
 * @module
 */

const LIBC = "libc.so.6";

const symbols = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  read_ptr: {
    name: "read",
    parameters: ["i32", "pointer", "usize"],
    result: "isize",
  },
  write_ptr: {
    name: "write",
    parameters: ["i32", "pointer", "usize"],
    result: "isize",
  },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pread_ptr: {
    name: "pread",
    parameters: ["i32", "pointer", "usize", "i64"],
    result: "isize",
  },
  pwrite_ptr: {
    name: "pwrite",
    parameters: ["i32", "pointer", "usize", "i64"],
    result: "isize",
  },
  preadv: { parameters: ["i32", "pointer", "i32", "i64"], result: "isize" },
  /**
   * pread/pwrite at a host address given as a number, with an i32 result:
   * no pointer object and no BigInt per call (the aio threads' hot path).
   * Exact: Linux moves at most MAX_RW_COUNT (2 GiB - 4 KiB) per call.
   */
  pread_addr_i32: { name: "pread", parameters: ["i32", "usize", "usize", "i64"], result: "i32" },
  pwrite_addr_i32: {
    name: "pwrite",
    parameters: ["i32", "usize", "usize", "i64"],
    result: "i32",
  },
  /** readv/writev over an iovec array in a JS buffer (tap frames to and from guest RAM). */
  readv: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  writev: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  /**
   * memcpy between host addresses given as numbers (no pointer objects, so
   * a hot path copies without allocating); the caller checks both ranges.
   */
  memcpy: { parameters: ["usize", "usize", "usize"], result: "void" },
  /**
   * readv/writev with the result as i32: an isize result is a BigInt (an
   * allocation per call), and the frame sizes of a hot path fit 31 bits.
   */
  readv_i32: { name: "readv", parameters: ["i32", "buffer", "i32"], result: "i32" },
  /** read/write with an i32 result, for eventfds (8 bytes) on hot paths. */
  read_i32: { name: "read", parameters: ["i32", "buffer", "u32"], result: "i32" },
  write_i32: { name: "write", parameters: ["i32", "buffer", "u32"], result: "i32" },
  writev_i32: { name: "writev", parameters: ["i32", "buffer", "i32"], result: "i32" },
  /** getrandom(2): virtio-rng's entropy source. */
  getrandom: { parameters: ["buffer", "usize", "u32"], result: "isize" },
  pwritev: { parameters: ["i32", "pointer", "i32", "i64"], result: "isize" },
  /**
   * preadv2/pwritev2 over an iovec array at a host address, with an i32
   * result (no BigInt per call): the page-cache fast path of the disks
   * (aio/page_cache_inline.ts), whose requests stay far below 2 GiB.
   */
  preadv2_i32: {
    name: "preadv2",
    parameters: ["i32", "usize", "i32", "i64", "i32"],
    result: "i32",
  },
  pwritev2_i32: {
    name: "pwritev2",
    parameters: ["i32", "usize", "i32", "i64", "i32"],
    result: "i32",
  },
  /** fstatfs(2): which file system holds a disk image (struct statfs, f_type first). */
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
  /** posix_fadvise(2); returns the error number itself, not -1. */
  posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
  fsync: { parameters: ["i32"], result: "i32" },
  fdatasync: { parameters: ["i32"], result: "i32" },
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  fallocate: { parameters: ["i32", "i32", "i64", "i64"], result: "i32" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  /** fstatat(2) (glibc 2.33+): a file's struct stat without opening it. */
  fstatat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
  dup: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "pointer"], result: "i32" },
  ioctl_buf: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
  ioctl_u64: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  mmap: {
    parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"],
    result: "pointer",
  },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  mprotect: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  malloc_trim: { parameters: ["usize"], result: "i32" },
  sysconf: { parameters: ["i32"], result: "i64" },
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  /** poll() on Deno's blocking thread pool: the calling isolate keeps running. */
  poll_nb: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  prctl_buf: {
    name: "prctl",
    parameters: ["i32", "buffer", "u64", "u64", "u64"],
    result: "i32",
  },
  sched_setaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  sched_getaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  sched_setscheduler: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  sched_getscheduler: { parameters: ["i32"], result: "i32" },
  syscall: {
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
  },
  /**
   * syscall() with an i32 result, for hot paths whose result fits (ppoll's
   * count or -1): an i64 result is a BigInt per call, ~0.2-0.4 µs more.
   */
  syscall_i32: {
    name: "syscall",
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i32",
  },
  /** syscall() on Deno's blocking thread pool (io_uring_enter with waits). */
  syscall_nb: {
    name: "syscall",
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
    nonblocking: true,
  },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  unlink: { parameters: ["buffer"], result: "i32" },
  mkdir: { parameters: ["buffer", "u32"], result: "i32" },
  rename: { parameters: ["buffer", "buffer"], result: "i32" },
  getpid: { parameters: [], result: "i32" },
  chmod: { parameters: ["buffer", "u32"], result: "i32" },
  umask: { parameters: ["u32"], result: "u32" },
  setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
  getpriority: { parameters: ["i32", "u32"], result: "i32" },
  sched_getparam: { parameters: ["i32", "buffer"], result: "i32" },
  getrusage: { parameters: ["i32", "buffer"], result: "i32" },
  setenv: { parameters: ["buffer", "buffer", "i32"], result: "i32" },
  getenv: { parameters: ["buffer"], result: "pointer" },
  get_nprocs_conf: { parameters: [], result: "i32" },
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  isatty: { parameters: ["i32"], result: "i32" },
  tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
  tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof symbols>["symbols"];
type SymbolName = keyof typeof symbols;

/** Every symbol name of the table (bound or not). */
export function libcSymbolNames(): string[] {
  return Object.keys(symbols);
}

/**
 * The symbols bound in this isolate so far: each is bound on its first use
 * (see {@link libc}).
 */
export function libcBoundSymbols(): string[] {
  return Object.keys(bound);
}

/**
 * The table's cold calls that are one x86-64 system call each, by number:
 * served through `syscall()` (see {@link LazyLibc}). `open` is `openat` from
 * the working directory, `eventfd` is `eventfd2`, `pread` is `pread64`, and
 * `sched_getaffinity` returns 0 on success as glibc's does (the system call
 * returns the mask's size). Hot paths keep their own bindings (read, write,
 * ioctl, poll, send/recv, the `_i32` aliases, and fsync, fdatasync and
 * fallocate, made per guest request: the wrapper allocates its arguments
 * per call); calls whose glibc wrapper
 * does more than the system call (`posix_fadvise` returns the error,
 * `getpriority` converts the nice value, `isatty`, the termios calls,
 * `waitpid`) keep theirs too. Numbers checked against `<sys/syscall.h>`
 * (sys/libc_test.ts).
 */
export const LIBC_VIA_SYSCALL: Readonly<Partial<Record<SymbolName, number>>> = {
  open: 257,
  close: 3,
  pread: 17,
  fstat: 5,
  fstatat: 262,
  lseek: 8,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  madvise: 28,
  dup: 32,
  dup2: 33,
  getpid: 39,
  socket: 41,
  connect: 42,
  shutdown: 48,
  bind: 49,
  listen: 50,
  getsockname: 51,
  socketpair: 53,
  setsockopt: 54,
  fcntl: 72,
  flock: 73,
  ftruncate: 77,
  rename: 82,
  mkdir: 83,
  unlink: 87,
  chmod: 90,
  umask: 95,
  getrusage: 98,
  fstatfs: 138,
  setpriority: 141,
  sched_getparam: 143,
  sched_setscheduler: 144,
  sched_getscheduler: 145,
  prctl: 157,
  sched_setaffinity: 203,
  sched_getaffinity: 204,
  accept4: 288,
  eventfd: 290,
  pipe2: 293,
  memfd_create: 319,
};

const AT_FDCWD = -100;

/** An argument of a table symbol as `syscall()` takes it: a number or a 64-bit integer. */
function syscallArg(type: Deno.NativeType, v: unknown): number | bigint {
  if (v === null || v === undefined) return 0;
  // As sys/address.ts viewAddress, which this module does not import: it
  // loads before SIGUSR1 is locked out (main.ts), with nothing beside it.
  if (type === "buffer") return Deno.UnsafePointer.value(Deno.UnsafePointer.of(v as BufferSource));
  if (type === "pointer") return Deno.UnsafePointer.value(v as Deno.PointerObject);
  return typeof v === "bigint" ? BigInt.asIntN(64, v) : v as number;
}

/**
 * `name` as a function over `syscall()`: its arguments converted (a buffer
 * or pointer to its address), its result of the symbol's type (a number
 * for `i32`/`u32`, a BigInt for 64-bit integers, a pointer object).
 */
function viaSyscall(lib: Symbols, name: SymbolName, nr: number): (...args: unknown[]) => unknown {
  const def = symbols[name] as Deno.ForeignFunction;
  const types = def.parameters;
  const wide = def.result !== "i32" && def.result !== "u32";
  // Deno takes a number for an i64 parameter as well (its types say bigint).
  const call = (wide ? lib.syscall : lib.syscall_i32) as unknown as (
    ...a: Array<number | bigint>
  ) => number | bigint;
  const first = name === "open" ? 1 : 0;
  return (...args: unknown[]) => {
    const x: Array<number | bigint> = [AT_FDCWD, 0, 0, 0, 0, 0];
    for (let i = 0; i < types.length; i++) x[first + i] = syscallArg(types[i], args[i]);
    const r = call(nr, x[0], x[1], x[2], x[3], x[4], x[5]);
    if (def.result === "pointer") return Deno.UnsafePointer.create(BigInt.asUintN(64, BigInt(r)));
    if (name === "sched_getaffinity") return r < 0 ? r : 0;
    return r;
  };
}

/**
 * Binding a symbol makes V8 a function with its own fast-call trampoline:
 * ~0.2-0.4 ms each natively (18 ms for the whole table, a tenth of a second
 * or more under the nested host's emulator), paid by every isolate that
 * loads this module. A vCPU or aio thread uses a handful of them, so each
 * symbol is bound by its own `dlopen` on first use (or, for
 * {@link LIBC_VIA_SYSCALL}'s, made over `syscall()`): the accessor on the
 * prototype runs once, then the function sits on the object as a plain
 * property and later calls never see the accessor.
 */
class LazyLibc {
  static {
    for (const name of Object.keys(symbols) as SymbolName[]) {
      Object.defineProperty(LazyLibc.prototype, name, {
        get(this: LazyLibc) {
          const nr = LIBC_VIA_SYSCALL[name];
          const fn = nr !== undefined
            ? viaSyscall(this as unknown as Symbols, name, nr)
            : Deno.dlopen(LIBC, { [name]: symbols[name] }).symbols[name];
          Object.defineProperty(this, name, { value: fn, enumerable: true });
          return fn;
        },
      });
    }
  }
}

const bound = new LazyLibc() as unknown as Symbols;

/** Binds `names` with one `dlopen` (cheaper per symbol than one each). */
function bindTogether(names: readonly SymbolName[]): void {
  const table: Partial<Record<SymbolName, Deno.ForeignFunction>> = {};
  for (const name of names) table[name] = symbols[name];
  const fns = Deno.dlopen(LIBC, table as Deno.ForeignLibraryInterface).symbols;
  for (const name of names) {
    Object.defineProperty(bound, name, { value: fns[name], enumerable: true });
  }
}

// The hot-path aliases below take their functions now.
bindTogether(["memcpy", "readv_i32", "read_i32", "write_i32", "writev_i32"]);

/** libc, with the symbols above, each bound on its first use. */
export const libc: Symbols = bound;

/**
 * memcpy between host addresses held as numbers: Deno passes a number to a
 * `usize` parameter as is (its types only say bigint), so a hot path copies
 * with no BigInt or pointer object. x86-64 user addresses fit in 47 bits.
 * The caller checks both ranges.
 *
 * @example
 * ```ts
 * import { memcpyHost } from "./libc.ts";
 * const a = new Uint8Array([1, 2, 3]), b = new Uint8Array(3);
 * const addr = (x: Uint8Array) => Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(x)));
 * memcpyHost(addr(b), addr(a), 3);
 * console.log(b); // Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export const memcpyHost = libc.memcpy as unknown as (dst: number, src: number, n: number) => void;

/**
 * readv(2) returning a number (-1 on error, errno set): for hot paths that
 * move less than 2 GiB per call.
 *
 * @example
 * ```ts ignore
 * const n = readvI32(fd, iovecs, count);
 * ```
 */
export const readvI32: (fd: number, iov: Uint8Array, count: number) => number = libc.readv_i32;
/**
 * read(2) returning a number (-1 on error, errno set), for small reads on
 * hot paths (an eventfd's counter).
 *
 * @example
 * ```ts ignore
 * const n = readI32(fd, buf, 8);
 * ```
 */
export const readI32: (fd: number, buf: Uint8Array, count: number) => number = libc.read_i32;
/**
 * write(2) returning a number (-1 on error, errno set), for small writes on
 * hot paths (an eventfd's counter).
 *
 * @example
 * ```ts ignore
 * const n = writeI32(fd, buf, 8);
 * ```
 */
export const writeI32: (fd: number, buf: Uint8Array, count: number) => number = libc.write_i32;
/**
 * writev(2) returning a number (-1 on error, errno set).
 *
 * @example
 * ```ts ignore
 * const n = writevI32(fd, iovecs, count);
 * ```
 */
export const writevI32: (fd: number, iov: Uint8Array, count: number) => number = libc.writev_i32;
