/**
 * QEMU's thread pool (util/thread-pool.c): Workers named `aio-N` take
 * requests from a shared-memory queue, run the blocking system call straight
 * into the caller's memory (guest RAM by host address, or a JS buffer), then
 * schedule one completion bottom half on the loop that owns the pool.
 *
 * Threads start on demand (up to `maxThreads`, 64): the first at the first
 * request, then `warmThreads` in all at once, then one more whenever
 * requests have waited with no idle thread for as long as a thread takes to
 * start (a Worker is an isolate: _pool_growth.ts says why); they exit after
 * `idleTimeoutMs` (10 s) idle, down to `minThreads` (0) or `warmThreads`. A full queue (`queueSize`) is an AioQueueFullError.
 * Cancel succeeds only while a request is queued (QEMU's rule): its
 * callback then gets -ECANCELED on the next loop iteration.
 *
 * @module
 */
import { ECANCELED, EIO } from "../sys/errno.ts";
import type { EventLoop } from "../mainloop/types.ts";
import {
  H_AVAIL,
  H_CTAIL,
  H_IDLE,
  H_IDLE_MS,
  H_MIN,
  H_STOP,
  H_THREADS,
  HEADER_WORDS,
  lock,
  type PoolShared,
  S_CANCELED,
  S_DONE,
  S_FREE,
  S_QUEUED,
  SLOT_BYTES,
  unlock,
} from "./_layout.ts";
import type { AioBackend, AioCallback, AioRequest } from "./types.ts";
import { AioQueueFullError } from "./types.ts";
import { workerUrl } from "../sys/worker_url.ts";
import { opCode } from "./request.ts";
import { registerAioPool, unregisterAioPool } from "./pool_stats.ts";
import { PoolGrowth } from "./_pool_growth.ts";
import { SlotFiller } from "./_slot_fill.ts";

/** Options for {@link ThreadPool}. */
export interface ThreadPoolOptions {
  /** Threads kept alive while idle (default 0). */
  minThreads?: number;
  /** Most threads (default 64, like QEMU). */
  maxThreads?: number;
  /** Idle time after which a thread above the minimum exits (default 10000 ms). */
  idleTimeoutMs?: number;
  /**
   * Threads started at the first request and kept however idle (default 0;
   * a disk's pool keeps 2). Beyond them a thread starts only for a backlog
   * that lasts as long as starting one takes (_pool_growth.ts).
   */
  warmThreads?: number;
  /** Requests in flight at once, a power of two (default 4096). */
  queueSize?: number;
  /**
   * The requests' callbacks start no promise reactions (a disk's device
   * model): completions run in `sync` callbacks of the loop
   * (mainloop/types.ts `CallbackOptions`), which then allocates nothing for
   * them. Default false.
   */
  syncCallbacks?: boolean;
  /**
   * For benchmarks: 2 f64 per slot (slot = handle % queueSize) that the pool
   * threads fill with CLOCK_MONOTONIC ns when each system call starts and ends.
   */
  stamps?: SharedArrayBuffer;
}

let nextThread = 0;

/**
 * The aio thread pool of one event loop. Use it from the loop's thread.
 *
 * @example
 * ```ts
 * import { MainLoop } from "../mainloop/main_loop.ts";
 * import { ThreadPool } from "./thread_pool.ts";
 * import { closeFd, O_RDONLY, openFile } from "../sys/fd.ts";
 * const loop = new MainLoop();
 * const running = loop.run();
 * const pool = new ThreadPool(loop, { maxThreads: 4 });
 * const fd = openFile("/dev/zero", O_RDONLY);
 * const buf = new Uint8Array(4096);
 * const n = await new Promise((done) =>
 *   pool.submit({ op: "pread", fd, offset: 0, buf }, done)
 * );
 * closeFd(fd);
 * await pool.close();
 * loop.stop();
 * await running;
 * loop.close();
 * ```
 */
export class ThreadPool implements AioBackend {
  /** Backend name. */
  readonly kind = "threads" as const;
  #loop: EventLoop;
  #max: number;
  #size: number;
  #h: Int32Array<SharedArrayBuffer>;
  #si: Int32Array<SharedArrayBuffer>;
  #sf: Float64Array<SharedArrayBuffer>;
  #sring: Int32Array<SharedArrayBuffer>;
  #cring: Int32Array<SharedArrayBuffer>;
  #shared: PoolShared;
  #tail = 0;
  #chead = 0;
  #free: number[] = [];
  #gen: Uint32Array;
  #cbs: (AioCallback | null)[];
  #canceled: number[] = [];
  #cancelBh;
  #doneBh;
  /** Encodes requests into slots and keeps their memory alive. */
  #slots: SlotFiller;
  #workers = new Set<Worker>();
  #growth: PoolGrowth;
  #starting = false;
  #broken: string | null = null;
  #exited: (() => void) | null = null;
  #drained: (() => void) | null = null;
  #inFlight = 0;
  #closed = false;
  /** Threads started over the pool's life (for tests and statistics). */
  spawned = 0;
  /** Callbacks run over the pool's life (statistics). */
  completed = 0;

  /**
   * @param loop the loop completions run on (the caller's thread's loop)
   * @param options thread limits, idle timeout, queue size
   */
  constructor(loop: EventLoop, options: ThreadPoolOptions = {}) {
    const min = options.minThreads ?? 0;
    this.#max = options.maxThreads ?? 64;
    const idle = options.idleTimeoutMs ?? 10_000;
    const size = options.queueSize ?? 4096;
    if (!Number.isInteger(min) || min < 0) throw new RangeError(`Invalid minThreads ${min}`);
    if (!Number.isInteger(this.#max) || this.#max < Math.max(1, min)) {
      throw new RangeError(`Invalid maxThreads ${this.#max}`);
    }
    if (!(idle >= 0)) throw new RangeError(`Invalid idleTimeoutMs ${idle}`);
    if (!Number.isInteger(size) || size < 1 || (size & (size - 1)) !== 0) {
      throw new RangeError(`Queue size must be a power of two, got ${size}`);
    }
    this.#loop = loop;
    this.#size = size;
    const sab = (n: number) => new SharedArrayBuffer(n);
    this.#shared = {
      header: sab(HEADER_WORDS * 4),
      slots: sab(size * SLOT_BYTES),
      addrs: sab(size * 8),
      lens: sab(size * 8),
      sring: sab(size * 4),
      cring: sab(size * 4),
      bh: { state: new SharedArrayBuffer(0), fd: -1, index: 0 },
    };
    if (options.stamps) {
      if (options.stamps.byteLength < size * 16) throw new RangeError("stamps too small");
      this.#shared.stamps = options.stamps;
    }
    this.#h = new Int32Array(this.#shared.header);
    this.#si = new Int32Array(this.#shared.slots);
    this.#sf = new Float64Array(this.#shared.slots);
    this.#sring = new Int32Array(this.#shared.sring).fill(-1);
    this.#cring = new Int32Array(this.#shared.cring);
    this.#slots = new SlotFiller(this.#shared, size);
    this.#growth = new PoolGrowth(loop, {
      warm: options.warmThreads ?? 0,
      grow: () => this.#closed || this.#maybeGrow(),
    });
    this.#h[H_MIN] = Math.max(min, this.#growth.warm);
    this.#h[H_IDLE_MS] = idle;
    this.#gen = new Uint32Array(size);
    this.#cbs = new Array(size).fill(null);
    for (let i = size - 1; i >= 0; i--) this.#free.push(i);
    const sync = { sync: options.syncCallbacks === true };
    this.#doneBh = loop.bh(() => this.#complete(), "aio-complete", sync);
    this.#cancelBh = loop.bh(() => this.#completeCanceled(), "aio-cancel", sync);
    this.#shared.bh = this.#doneBh.handle();
    this.#h[H_THREADS] = min;
    for (let i = 0; i < min; i++) this.#spawn();
    registerAioPool(this);
  }

  /** Live pool threads. */
  get threads(): number {
    return Atomics.load(this.#h, H_THREADS);
  }

  /** Requests queued that no thread has taken yet. */
  get queued(): number {
    return Atomics.load(this.#h, H_AVAIL);
  }

  /** Threads waiting for work. */
  get idleThreads(): number {
    return Atomics.load(this.#h, H_IDLE);
  }

  /** Requests whose callback has not run yet. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Queues a request. Buffers are used in place (no copies): a `buf` is kept
   * alive by the pool until completion; `iov` addresses must stay mapped.
   *
   * @param req operation, fd, offset, memory
   * @param cb runs once on the pool's loop with bytes or -errno
   * @returns a handle for {@link ThreadPool.cancel}
   */
  submit(req: AioRequest, cb: AioCallback): number {
    if (this.#closed) throw new Error("Thread pool is closed");
    if (this.#broken) throw new Error(this.#broken);
    const op = opCode(req.op);
    const fd = req.fd, offset = req.offset ?? 0;
    if (!Number.isInteger(fd)) throw new RangeError(`Invalid fd ${fd}`);
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new RangeError(`Invalid offset ${offset}`);
    }
    const idx = this.#free.pop();
    if (idx === undefined) throw new AioQueueFullError("Thread pool queue is full (EAGAIN)");
    try {
      this.#slots.fill(idx, op, req);
    } catch (e) {
      this.#free.push(idx);
      throw e;
    }
    const W = SLOT_BYTES / 4;
    this.#si[idx * W + 1] = op;
    this.#si[idx * W + 2] = fd;
    this.#sf[idx * (SLOT_BYTES / 8) + 2] = offset;
    this.#cbs[idx] = cb;
    this.#inFlight++;
    Atomics.store(this.#si, idx * W, S_QUEUED);
    const pos = this.#tail++ & (this.#size - 1);
    // Only a taker stalled for a whole ring's worth of requests can hold this entry.
    while (Atomics.load(this.#sring, pos) !== -1) { /* wait for the taker */ }
    Atomics.store(this.#sring, pos, idx);
    const h = this.#h;
    lock(h);
    const avail = Atomics.add(h, H_AVAIL, 1) + 1;
    const threads = Atomics.load(h, H_THREADS);
    // One thread starts at a time (like QEMU's pending_threads); when it is
    // ready, the need is checked again.
    const grow = !this.#starting && threads < this.#max &&
      this.#growth.wants(threads, avail > Atomics.load(h, H_IDLE));
    if (grow) Atomics.store(h, H_THREADS, threads + 1);
    unlock(h);
    Atomics.notify(h, H_AVAIL, 1);
    if (grow) this.#spawn();
    return this.#gen[idx] * this.#size + idx;
  }

  /**
   * Cancels a request that no thread has started.
   *
   * @param handle from submit
   * @returns true if cancelled (its callback will get -ECANCELED); false if it
   * is running, finished, or unknown
   */
  cancel(handle: number): boolean {
    if (!Number.isSafeInteger(handle) || handle < 0) return false;
    const idx = handle % this.#size;
    if (Math.floor(handle / this.#size) !== this.#gen[idx] || this.#cbs[idx] === null) return false;
    const base = idx * (SLOT_BYTES / 4);
    if (Atomics.compareExchange(this.#si, base, S_QUEUED, S_CANCELED) !== S_QUEUED) return false;
    // The slot comes back through the completion ring when a thread pops it.
    this.#canceled.push(idx);
    this.#cancelBh.schedule();
    return true;
  }

  /**
   * Waits until every submitted request has completed, then stops and joins
   * the threads. The loop must keep running meanwhile.
   *
   * @returns resolves when all threads have exited
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    unregisterAioPool(this);
    if (this.#inFlight > 0) {
      await new Promise<void>((r) => (this.#drained = r));
    }
    this.#growth.close();
    Atomics.store(this.#h, H_STOP, 1);
    Atomics.notify(this.#h, H_AVAIL);
    if (this.#workers.size > 0) await new Promise<void>((r) => (this.#exited = r));
    if (this.#broken) Atomics.store(this.#h, H_THREADS, 0);
    this.#doneBh.delete();
    this.#cancelBh.delete();
  }

  #release(idx: number): void {
    Atomics.store(this.#si, idx * (SLOT_BYTES / 4), S_FREE);
    this.#cbs[idx] = null;
    this.#slots.release(idx);
    this.#gen[idx] = (this.#gen[idx] + 1) % 0x100000;
    this.#free.push(idx);
  }

  #complete(): void {
    const mask = this.#size - 1;
    const F = SLOT_BYTES / 8;
    // One batch (what workers had posted when we started): callbacks that
    // resubmit cannot keep this BH running forever and starve the loop.
    let budget = (Atomics.load(this.#h, H_CTAIL) - this.#chead) | 0;
    while (budget-- > 0) {
      const pos = this.#chead & mask;
      const v = Atomics.load(this.#cring, pos);
      if (v === 0) break; // reserved but not yet written: its worker schedules us again
      Atomics.store(this.#cring, pos, 0);
      this.#chead++;
      const idx = v - 1;
      const state = Atomics.load(this.#si, idx * (SLOT_BYTES / 4));
      const cb = this.#cbs[idx];
      const res = this.#sf[idx * F + 3];
      if (state === S_DONE && cb) {
        this.#release(idx);
        this.#inFlight--;
        this.#finish(cb, res);
      } else if (state === S_CANCELED && cb === null) {
        // Its callback already ran with -ECANCELED.
        this.#release(idx);
      } else {
        // A cancel whose callback is still pending: keep the slot until it runs.
        this.#orphans.add(idx);
      }
    }
    if (Atomics.load(this.#h, H_AVAIL) === 0) this.#growth.drained();
    this.#checkDrained();
  }

  #orphans = new Set<number>();

  #completeCanceled(): void {
    const list = this.#canceled;
    this.#canceled = [];
    for (const idx of list) {
      const cb = this.#cbs[idx];
      this.#cbs[idx] = null;
      this.#inFlight--;
      if (this.#orphans.delete(idx)) this.#release(idx);
      if (cb) this.#finish(cb, -ECANCELED);
    }
    this.#checkDrained();
  }

  #finish(cb: AioCallback, res: number): void {
    this.completed++;
    try {
      cb(res);
    } catch (e) {
      // One request's callback must not lose the others' completions.
      queueMicrotask(() => {
        throw e;
      });
    }
  }

  #checkDrained(): void {
    if (this.#inFlight === 0 && this.#drained) {
      const d = this.#drained;
      this.#drained = null;
      d();
    }
  }

  #spawn(): void {
    const name = `aio-${nextThread++}`;
    const w = new Worker(workerUrl(new URL("./_worker.ts", import.meta.url)), {
      type: "module",
      name,
    });
    this.spawned++;
    this.#workers.add(w);
    this.#starting = true;
    let ready = false;
    const t0 = this.#loop.now("monotonic");
    w.onmessage = (e: MessageEvent<string>) => {
      if (e.data === "ready") {
        ready = true;
        this.#starting = false;
        this.#growth.started(this.#loop.now("monotonic") - t0);
        // This thread is about to take a queued request itself: another
        // starts only for a backlog beyond it (a Worker costs tens of ms).
        if (!this.#closed) this.#maybeGrow(1);
      } else {
        this.#onExit(w);
      }
    };
    w.onerror = (e) => {
      e.preventDefault();
      this.#starting = false;
      // It can no longer decrement the count itself.
      lock(this.#h);
      const left = Atomics.sub(this.#h, H_THREADS, 1) - 1;
      unlock(this.#h);
      if (!ready && !this.#broken) {
        // Retrying would fail the same way (e.g. no --allow-read for the module).
        this.#broken = `Thread pool cannot start threads: ${e.message}`;
        console.error(this.#broken);
      }
      this.#onExit(w);
      if (this.#broken && left === 0) this.#failQueued();
    };
    w.postMessage({ shared: this.#shared, name });
  }

  #onExit(w: Worker): void {
    w.terminate();
    this.#workers.delete(w);
    if (this.#workers.size === 0 && this.#exited) {
      const e = this.#exited;
      this.#exited = null;
      e();
    }
    // Spawned threads exit only with nothing queued, but be safe: the
    // submitter's growth check may have relied on a thread that just left.
    if (!this.#closed && !this.#broken && Atomics.load(this.#h, H_AVAIL) > 0) this.#maybeGrow();
  }

  /** With no thread able to start, queued requests fail with EIO instead of hanging. */
  #failQueued(): void {
    const W = SLOT_BYTES / 4;
    for (let idx = 0; idx < this.#size; idx++) {
      const cb = this.#cbs[idx];
      if (!cb || Atomics.compareExchange(this.#si, idx * W, S_QUEUED, S_CANCELED) !== S_QUEUED) {
        continue;
      }
      this.#cbs[idx] = null;
      this.#inFlight--;
      this.#finish(cb, -EIO);
    }
    this.#checkDrained();
  }

  /** Starts a thread if the growth rule wants one (`arriving`: threads about to take work). */
  #maybeGrow(arriving = 0): void {
    const h = this.#h;
    lock(h);
    const threads = Atomics.load(h, H_THREADS);
    const grow = !this.#starting && threads < this.#max &&
      this.#growth.wants(threads, Atomics.load(h, H_AVAIL) > Atomics.load(h, H_IDLE) + arriving);
    if (grow) Atomics.store(h, H_THREADS, threads + 1);
    unlock(h);
    if (grow) this.#spawn();
  }
}
