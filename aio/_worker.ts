/**
 * An aio pool thread (`aio-N`): takes requests from the shared queue, runs
 * the system call into the caller's memory (or fallocate, with the zero
 * fallback), posts the result and schedules
 * the pool's completion BH. Waits with Atomics.wait, so the pool can always
 * wake it (and it never blocks in FFI while idle).
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { EINTR, errno } from "../sys/errno.ts";
import { setThreadName } from "../sys/thread.ts";
import { SharedBh } from "../mainloop/bh.ts";
import { CLOCK_MONOTONIC, clockNs } from "../mainloop/clock.ts";
import {
  H_AVAIL,
  H_CTAIL,
  H_HEAD,
  H_IDLE,
  H_IDLE_MS,
  H_MIN,
  H_STOP,
  H_THREADS,
  lock,
  OP_FALLOCATE,
  OP_FDATASYNC,
  OP_FSYNC,
  OP_PREAD,
  OP_PREADV,
  OP_PWRITE,
  OP_PWRITEV,
  type PoolShared,
  S_CANCELED,
  S_DONE,
  S_QUEUED,
  S_RUNNING,
  SLOT_BYTES,
  unlock,
} from "./_layout.ts";
import { runFallocate } from "./_fallocate.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
  close(): void;
};

/**
 * The calls below with numbers for their 64-bit arguments: Deno's FFI takes
 * a number there (its types say bigint), and a number allocates nothing.
 */
type RwAddr = (fd: number, addr: number, len: number, off: number) => number;
type RwVec = (fd: number, iov: number, count: number, off: number, flags: number) => number;
const preadAddr = libc.pread_addr_i32 as unknown as RwAddr;
const pwriteAddr = libc.pwrite_addr_i32 as unknown as RwAddr;
const preadv2 = libc.preadv2_i32 as unknown as RwVec;
const pwritev2 = libc.pwritev2_i32 as unknown as RwVec;

// The request's address as a number (no BigInt per request): host
// addresses fit 53 bits, and the two halves read without allocating.
function rw(op: number, fd: number, addr: number, len: number, off: number): number {
  let done = 0;
  while (done < len) {
    // An i32 result: Linux moves at most MAX_RW_COUNT (2 GiB - 4 KiB) a call.
    const n = op === OP_PREAD
      ? preadAddr(fd, addr + done, len - done, off + done)
      : pwriteAddr(fd, addr + done, len - done, off + done);
    if (n < 0) {
      const e = errno();
      if (e === EINTR) continue;
      return done > 0 ? done : -e;
    }
    if (n === 0) break; // EOF
    done += n;
  }
  return done;
}

function vec(op: number, fd: number, addr: number, cnt: number, off: number): number {
  for (;;) {
    // preadv2/pwritev2 with no flags are preadv/pwritev, with an i32 result.
    const n = op === OP_PREADV ? preadv2(fd, addr, cnt, off, 0) : pwritev2(fd, addr, cnt, off, 0);
    if (n >= 0) return n;
    const e = errno();
    if (e !== EINTR) return -e;
  }
}

function sync(op: number, fd: number): number {
  for (;;) {
    const r = op === OP_FSYNC ? libc.fsync(fd) : libc.fdatasync(fd);
    if (r >= 0) return 0;
    const e = errno();
    if (e !== EINTR) return -e;
  }
}

function serve(s: PoolShared): void {
  const h = new Int32Array(s.header);
  const si = new Int32Array(s.slots);
  const sf = new Float64Array(s.slots);
  // Each slot's address as two u32 halves (the pool writes it as a u64).
  const addrHalves = new Uint32Array(s.addrs);
  const lens = new Float64Array(s.lens);
  const sring = new Int32Array(s.sring);
  const cring = new Int32Array(s.cring);
  const mask = sring.length - 1;
  const bh = new SharedBh(s.bh);
  const W = SLOT_BYTES / 4, F = SLOT_BYTES / 8;
  const stamps = s.stamps ? new Float64Array(s.stamps) : null;

  for (;;) {
    if (Atomics.load(h, H_STOP)) break;
    const a = Atomics.load(h, H_AVAIL);
    if (a > 0) {
      if (Atomics.compareExchange(h, H_AVAIL, a, a - 1) !== a) continue;
      const pos = Atomics.add(h, H_HEAD, 1) & mask;
      let idx: number;
      // The submitter stores the entry before raising H_AVAIL; -1 marks taken.
      while ((idx = Atomics.exchange(sring, pos, -1)) < 0) { /* not yet visible */ }
      const base = idx * W;
      if (Atomics.compareExchange(si, base, S_QUEUED, S_RUNNING) === S_QUEUED) {
        const op = si[base + 1], fd = si[base + 2], cnt = si[base + 3];
        const off = sf[idx * F + 2];
        if (stamps) stamps[2 * idx] = clockNs(CLOCK_MONOTONIC);
        const addr = addrHalves[2 * idx] + addrHalves[2 * idx + 1] * 0x1_0000_0000;
        let res: number;
        if (op === OP_PREAD || op === OP_PWRITE) res = rw(op, fd, addr, lens[idx], off);
        else if (op === OP_PREADV || op === OP_PWRITEV) res = vec(op, fd, addr, cnt, off);
        else if (op === OP_FSYNC || op === OP_FDATASYNC) res = sync(op, fd);
        else if (op === OP_FALLOCATE) res = runFallocate(fd, cnt, off, lens[idx]);
        else res = -22; // EINVAL
        if (stamps) stamps[2 * idx + 1] = clockNs(CLOCK_MONOTONIC);
        sf[idx * F + 3] = res;
        Atomics.store(si, base, S_DONE);
      } else {
        Atomics.store(si, base, S_CANCELED);
      }
      const cpos = Atomics.add(h, H_CTAIL, 1) & mask;
      Atomics.store(cring, cpos, idx + 1);
      bh.schedule();
      continue;
    }
    Atomics.add(h, H_IDLE, 1);
    const r = Atomics.wait(h, H_AVAIL, 0, Atomics.load(h, H_IDLE_MS));
    lock(h);
    Atomics.sub(h, H_IDLE, 1);
    if (
      r === "timed-out" && Atomics.load(h, H_AVAIL) === 0 &&
      Atomics.load(h, H_THREADS) > Atomics.load(h, H_MIN)
    ) {
      Atomics.sub(h, H_THREADS, 1);
      unlock(h);
      return;
    }
    unlock(h);
  }
  // Closing: leave the count consistent for the pool's bookkeeping.
  lock(h);
  Atomics.sub(h, H_THREADS, 1);
  unlock(h);
}

self.onmessage = (e: MessageEvent<{ shared: PoolShared; name: string }>) => {
  self.onmessage = null;
  setThreadName(e.data.name);
  self.postMessage("ready");
  serve(e.data.shared);
  self.postMessage("exit");
  self.close();
};
