/**
 * The POSIX AIO API (aio(7)) over the aio backends: control blocks,
 * aioRead/aioWrite/aioFsync, aioError, aioReturn, aioSuspend, aioCancel,
 * lioListio.
 *
 * Where it differs from POSIX, and why:
 * - Completions are delivered by an event loop on the submitting thread
 *   (QEMU's model), not by other threads writing the control block. A
 *   C-style busy loop `while (aio_error(cb) == EINPROGRESS) {}` would never
 *   see completion, so waiting is `await aioSuspend(...)` and `lioListio(LIO_WAIT)`
 *   returns a Promise.
 * - Failures throw {@link ErrnoError} (`aio_read failed: EAGAIN`) instead of
 *   returning -1 and setting errno. aioReturn still returns -1 for a failed
 *   operation (the errno is aioError's), and only once: a second call throws
 *   EINVAL, as POSIX leaves it undefined.
 * - No signals (aio_sigevent): await aioSuspend or pass `onComplete`.
 * - aioSuspend's timeout is in milliseconds; on expiry it rejects with EAGAIN.
 * - Reads transfer the whole buffer unless EOF comes first (glibc's threads
 *   make one pread call); aioCancel cancels only requests still queued.
 *
 * Which loop: {@link aioSetup} binds the API to a loop you run (e.g. the VMM's
 * main loop) and a backend (`threads` or `io_uring`; by default io_uring
 * where the kernel allows it, else threads). Without it, the first request
 * starts a private MainLoop and backend on the calling thread;
 * they shut down 50 ms after the last request completes, so a script exits by
 * itself. {@link aioShutdown} ends either at once.
 *
 * @module
 */
import { EAGAIN, EBADF, EINPROGRESS, EINVAL, ErrnoError } from "../sys/errno.ts";
import { MainLoop } from "../mainloop/main_loop.ts";
import type { EventLoop } from "../mainloop/types.ts";
import { ThreadPool, type ThreadPoolOptions } from "./thread_pool.ts";
import { IoUring, ioUringAvailable } from "./io_uring.ts";
import { type AioBackend, type AioOp, AioQueueFullError } from "./types.ts";

/** aioCancel results (glibc values). */
export const AIO_CANCELED = 0;
/** Some request was already running. */
export const AIO_NOTCANCELED = 1;
/** Every request had already completed. */
export const AIO_ALLDONE = 2;
/** lioListio modes. */
export const LIO_WAIT = 0;
/** Return after submitting. */
export const LIO_NOWAIT = 1;
/** lioListio operations. */
export const LIO_READ = 0;
/** Write. */
export const LIO_WRITE = 1;
/** Skip this entry. */
export const LIO_NOP = 2;
/** aioFsync modes (open(2) flag values). */
export const O_DSYNC = 0o10000;
/** Full file sync. */
export const O_SYNC = 0o4010000;

/** A POSIX AIO control block (struct aiocb). */
export class Aiocb {
  /** File descriptor. */
  fd: number;
  /** Buffer read into / written from, used in place. */
  buf: Uint8Array | null;
  /** Bytes to transfer (at most buf.byteLength). */
  nbytes: number;
  /** File offset. */
  offset: number;
  /** Operation for lioListio: LIO_READ, LIO_WRITE or LIO_NOP. */
  lioOpcode: number;
  /** Called on the loop's thread when the request completes (instead of sigevent). */
  onComplete: ((cb: Aiocb) => void) | null = null;

  /**
   * @param init fields to set
   * @example
   * ```ts
   * import { Aiocb } from "./posix_aio.ts";
   * const cb = new Aiocb({ fd: 0, buf: new Uint8Array(1024), nbytes: 1024 });
   * ```
   */
  constructor(init: Partial<Pick<Aiocb, "fd" | "buf" | "nbytes" | "offset" | "lioOpcode">> = {}) {
    this.fd = init.fd ?? -1;
    this.buf = init.buf ?? null;
    this.nbytes = init.nbytes ?? init.buf?.byteLength ?? 0;
    this.offset = init.offset ?? 0;
    this.lioOpcode = init.lioOpcode ?? LIO_NOP;
  }
}

interface Req {
  ctx: Ctx;
  handle: number;
  error: number;
  result: number;
  returned: boolean;
  waiters: Set<() => void>;
}

interface Ctx {
  loop: EventLoop;
  backend: AioBackend;
  own: { loop: MainLoop; running: Promise<void> } | null;
  outstanding: Set<Aiocb>;
  idleTimer: ReturnType<typeof setTimeout> | null;
}

/** Options for {@link aioSetup}. */
export interface AioSetupOptions {
  /** The loop completions run on; you run it. Omit for a private loop. */
  loop?: EventLoop;
  /** `threads` or `io_uring`; default io_uring where available, else threads. */
  backend?: "threads" | "io_uring";
  /** Thread-pool limits for the threads backend. */
  pool?: ThreadPoolOptions;
}

const reqs = new WeakMap<Aiocb, Req>();
let ctx: Ctx | null = null;
let setup: AioSetupOptions = {};
const IDLE_SHUTDOWN_MS = 50;

function makeBackend(loop: EventLoop, o: AioSetupOptions): AioBackend {
  if (o.backend === "io_uring") return IoUring.create(loop);
  if (o.backend === "threads") return new ThreadPool(loop, o.pool);
  // Default: io_uring where it works (no threads to start); otherwise the
  // pool (its Workers load under --allow-ffi alone, see sys/worker_url.ts).
  return ioUringAvailable() === null ? IoUring.create(loop) : new ThreadPool(loop, o.pool);
}

/**
 * Chooses the loop and backend for later requests. Call it with no requests
 * outstanding; it shuts down a private context first.
 *
 * @param options loop, backend, pool limits
 * @example
 * ```ts
 * import { aioSetup, aioShutdown } from "./posix_aio.ts";
 * await aioSetup({ backend: "threads", pool: { maxThreads: 4 } });
 * await aioShutdown();
 * ```
 */
export async function aioSetup(options: AioSetupOptions = {}): Promise<void> {
  await teardown();
  setup = { ...options };
  if (options.loop) {
    ctx = {
      loop: options.loop,
      backend: makeBackend(options.loop, options),
      own: null,
      outstanding: new Set(),
      idleTimer: null,
    };
  }
}

/**
 * Waits for outstanding requests, then releases the backend (and the private
 * loop, if one runs) and forgets {@link aioSetup}'s choices.
 */
export async function aioShutdown(): Promise<void> {
  setup = {};
  await teardown();
}

async function teardown(): Promise<void> {
  const c = ctx;
  if (!c) return;
  ctx = null;
  if (c.idleTimer !== null) clearTimeout(c.idleTimer);
  await c.backend.close();
  if (c.own) {
    c.own.loop.stop();
    await c.own.running;
    c.own.loop.close();
  }
}

function context(): Ctx {
  if (ctx) return ctx;
  const loop = new MainLoop({ name: "aio" });
  const running = loop.run();
  ctx = {
    loop,
    backend: makeBackend(loop, setup),
    own: { loop, running },
    outstanding: new Set(),
    idleTimer: null,
  };
  return ctx;
}

function submit(call: string, cb: Aiocb, op: AioOp): void {
  if (!(cb instanceof Aiocb)) throw new TypeError(`${call} needs an Aiocb`);
  const old = reqs.get(cb);
  if (old && old.error === EINPROGRESS) throw new ErrnoError(call, EINVAL);
  if (!Number.isInteger(cb.fd) || cb.fd < 0) throw new ErrnoError(call, EBADF);
  const sync = op === "fsync" || op === "fdatasync";
  if (
    !sync && (!cb.buf || !Number.isSafeInteger(cb.nbytes) || cb.nbytes < 0 ||
      cb.nbytes > cb.buf.byteLength || !Number.isSafeInteger(cb.offset) || cb.offset < 0)
  ) {
    throw new ErrnoError(call, EINVAL);
  }
  const c = context();
  if (c.idleTimer !== null) {
    clearTimeout(c.idleTimer);
    c.idleTimer = null;
  }
  const req: Req = {
    ctx: c,
    handle: -1,
    error: EINPROGRESS,
    result: 0,
    returned: false,
    waiters: new Set(),
  };
  const buf = sync ? undefined : cb.buf!.subarray(0, cb.nbytes);
  try {
    req.handle = c.backend.submit(
      { op, fd: cb.fd, offset: sync ? 0 : cb.offset, buf },
      (r) => complete(cb, req, r),
    );
  } catch (e) {
    if (e instanceof AioQueueFullError) throw new ErrnoError(call, EAGAIN);
    if (e instanceof RangeError) throw new ErrnoError(call, EINVAL);
    throw e;
  }
  reqs.set(cb, req);
  c.outstanding.add(cb);
}

function complete(cb: Aiocb, req: Req, r: number): void {
  req.error = r < 0 ? -r : 0;
  req.result = r < 0 ? -1 : r;
  const c = req.ctx;
  c.outstanding.delete(cb);
  for (const w of req.waiters) w();
  req.waiters.clear();
  if (c.own && c.outstanding.size === 0 && ctx === c) {
    c.idleTimer = setTimeout(() => {
      if (ctx === c && c.outstanding.size === 0) teardown().catch(console.error);
    }, IDLE_SHUTDOWN_MS);
  }
  cb.onComplete?.(cb);
}

/**
 * Queues a read of `nbytes` at `offset` into `buf` (aio_read).
 *
 * @param cb the control block; must not be in progress
 */
export function aioRead(cb: Aiocb): void {
  submit("aio_read", cb, "pread");
}

/**
 * Queues a write of `nbytes` from `buf` at `offset` (aio_write).
 *
 * @param cb the control block; must not be in progress
 */
export function aioWrite(cb: Aiocb): void {
  submit("aio_write", cb, "pwrite");
}

/**
 * Queues an fsync (O_SYNC) or fdatasync (O_DSYNC) of cb.fd (aio_fsync). Like
 * QEMU's pool, it does not wait for earlier requests: await them first.
 *
 * @param op O_SYNC or O_DSYNC
 * @param cb the control block (only fd is used)
 */
export function aioFsync(op: number, cb: Aiocb): void {
  if (op !== O_SYNC && op !== O_DSYNC) throw new ErrnoError("aio_fsync", EINVAL);
  submit("aio_fsync", cb, op === O_SYNC ? "fsync" : "fdatasync");
}

/**
 * The request's status (aio_error): EINPROGRESS, 0 on success, or the errno
 * (ECANCELED when cancelled).
 *
 * @param cb a submitted control block
 * @returns EINPROGRESS, 0 or an errno
 */
export function aioError(cb: Aiocb): number {
  const req = reqs.get(cb);
  if (!req) throw new ErrnoError("aio_error", EINVAL);
  return req.error;
}

/**
 * The request's result (aio_return): bytes transferred, or -1 on failure.
 * Once only; throws EINPROGRESS while running and EINVAL the second time.
 *
 * @param cb a completed control block
 * @returns bytes, or -1
 */
export function aioReturn(cb: Aiocb): number {
  const req = reqs.get(cb);
  if (!req || req.returned) throw new ErrnoError("aio_return", EINVAL);
  if (req.error === EINPROGRESS) throw new ErrnoError("aio_return", EINPROGRESS);
  req.returned = true;
  return req.result;
}

/**
 * Resolves once at least one listed request has completed (aio_suspend).
 * Null entries are ignored, as in POSIX.
 *
 * @param list control blocks
 * @param timeoutMs give up after this long, rejecting with EAGAIN
 * @returns resolves when one is done
 */
export function aioSuspend(list: readonly (Aiocb | null)[], timeoutMs?: number): Promise<void> {
  const live: Req[] = [];
  for (const cb of list) {
    if (!cb) continue;
    const req = reqs.get(cb);
    if (!req) continue;
    if (req.error !== EINPROGRESS) return Promise.resolve();
    live.push(req);
  }
  if (live.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const done = () => {
      for (const r of live) r.waiters.delete(done);
      if (timer !== null) clearTimeout(timer);
      resolve();
    };
    for (const r of live) r.waiters.add(done);
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        for (const r of live) r.waiters.delete(done);
        reject(new ErrnoError("aio_suspend", EAGAIN));
      }, timeoutMs);
    }
  });
}

/**
 * Cancels queued requests on fd: one control block, or all when cb is absent
 * (aio_cancel). Cancelled requests complete with ECANCELED.
 *
 * @param fd the file descriptor
 * @param cb a control block on fd, or undefined for all of fd's requests
 * @returns AIO_CANCELED, AIO_NOTCANCELED or AIO_ALLDONE
 */
export function aioCancel(fd: number, cb?: Aiocb): number {
  if (cb && cb.fd !== fd) throw new ErrnoError("aio_cancel", EINVAL);
  const c = ctx;
  const targets = cb ? [cb] : c ? [...c.outstanding].filter((x) => x.fd === fd) : [];
  let canceled = 0, running = 0;
  for (const t of targets) {
    const req = reqs.get(t);
    if (!req || req.error !== EINPROGRESS) continue;
    if (req.ctx.backend.cancel(req.handle)) canceled++;
    else running++;
  }
  if (running > 0) return AIO_NOTCANCELED;
  return canceled > 0 ? AIO_CANCELED : AIO_ALLDONE;
}

/**
 * Submits a list of reads and writes (lio_listio). With LIO_WAIT the promise
 * resolves when all have completed and rejects with EIO if any failed; with
 * LIO_NOWAIT it resolves once all are queued.
 *
 * @param mode LIO_WAIT or LIO_NOWAIT
 * @param list control blocks with lioOpcode set; null entries are skipped
 * @returns see above
 */
export async function lioListio(mode: number, list: readonly (Aiocb | null)[]): Promise<void> {
  if (mode !== LIO_WAIT && mode !== LIO_NOWAIT) throw new ErrnoError("lio_listio", EINVAL);
  const sent: Aiocb[] = [];
  for (const cb of list) {
    if (!cb || cb.lioOpcode === LIO_NOP) continue;
    if (cb.lioOpcode === LIO_READ) submit("lio_listio", cb, "pread");
    else if (cb.lioOpcode === LIO_WRITE) submit("lio_listio", cb, "pwrite");
    else throw new ErrnoError("lio_listio", EINVAL);
    sent.push(cb);
  }
  if (mode === LIO_NOWAIT) return;
  for (const cb of sent) {
    while (aioError(cb) === EINPROGRESS) await aioSuspend([cb]);
  }
  if (sent.some((cb) => aioError(cb) !== 0)) throw new ErrnoError("lio_listio", 5 /* EIO */);
}
