/**
 * Asynchronous file I/O for the VMM: QEMU's thread pool (`aio=threads`), an
 * io_uring backend (`aio=io_uring`), and the POSIX AIO API over them.
 *
 * The interface devices use (virtio-blk and friends), on the thread of the
 * loop that owns the queue:
 *
 * ```ts ignore
 * const aio: AioBackend = kind === "io_uring" ? IoUring.create(loop) : new ThreadPool(loop);
 * const handle = aio.submit(
 *   { op: "preadv", fd, offset, iov: [{ addr: mem.hostAddress(gpa, len), len }, ...] },
 *   (result) => {
 *     // On `loop`'s thread: bytes transferred, or -errno (-ECANCELED).
 *   },
 * );
 * aio.cancel(handle); // true only while still queued (thread pool)
 * await aio.close(); // at shutdown: waits for in-flight requests
 * ```
 *
 * - Guest RAM is given as host addresses (`GuestMemory.hostAddress`), JS
 *   memory as `buf`; either way the data moves without copies.
 * - Each backend belongs to one loop: create it on that loop's thread (an
 *   iothread creates its own). Completions come back as a bottom half of
 *   that loop (threads) or its eventfd handler (io_uring).
 * - `IoUring.create` throws an Error naming `aio=threads` where io_uring is
 *   unavailable; `ioUringAvailable()` asks without throwing.
 *
 * @module
 */
export * from "./types.ts";
export * from "./iovec.ts";
export * from "./thread_pool.ts";
export * from "./io_uring.ts";
export * from "./backend.ts";
export * from "./pool_registry.ts";
export * from "./posix_aio.ts";
