/**
 * The fd that Deno's event loop on this thread sleeps in: the epoll instance
 * of its tokio reactor. It becomes readable whenever that event loop has
 * something to do (a Worker's message, a finished blocking-pool call, a
 * signal, a socket), so a thread that sleeps in its own ppoll can add it to
 * the set and give Deno a turn exactly when Deno needs one, instead of
 * handing its whole wait to Deno's thread pool (two thread hops per wake-up)
 * or waking up on a fixed period to ask. Deno's timers are not fds: a loop
 * that holds the thread still yields at least every so often for them.
 *
 * Every Deno runtime (the main one, each Worker's, `deno test`'s) has its
 * own, so it is found by experiment, once per thread: list the distinct
 * `anon_inode:[eventpoll]` fds (readlink(2) on /proc/self/fd/N and kcmp(2)
 * through libc, so no --allow-read), end a call on Deno's blocking pool
 * while this thread is blocked, and see which fd is readable when its event
 * loop has been woken - in up to three rounds, one fd alone. Where that is not clear
 * the answer is -1 and the loop keeps its older way.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { POLLIN, ppoll, ppollAsync } from "./poll.ts";
import { closeFd, eventFd, eventFdDrain, eventFdWrite } from "./fd.ts";
import { viewAddress } from "./address.ts";

const SYS_readlink = 89n;
const SYS_kcmp = 312n;
const KCMP_FILE = 0n;
const EVENTPOLL = "anon_inode:[eventpoll]";
/** Stop scanning after this many fds in a row that are not open. */
const GAP = 64;
/** The longest wait for a round's call to end and wake this thread. */
const PROBE_WAIT_NS = 500_000_000n;
/** Rounds that must agree. */
const ROUNDS = 3;
/** How often to look whether a round's pool call has ended. */
const POLL_STEP_NS = 200_000n;
/** How long the wake-up of this thread's event loop gets to land after it. */
const SETTLE_NS = 5_000_000n;

let found: Promise<number> | undefined;

function eventPollFds(): number[] {
  const out = new Uint8Array(64);
  const fds: number[] = [];
  for (let fd = 0, misses = 0; misses < GAP; fd++) {
    const path = new TextEncoder().encode(`/proc/self/fd/${fd}\0`);
    const n = Number(
      libc.syscall(
        SYS_readlink,
        viewAddress(path),
        viewAddress(out),
        BigInt(out.length),
        0n,
        0n,
        0n,
      ),
    );
    if (n < 0) {
      misses++;
      continue;
    }
    misses = 0;
    if (new TextDecoder().decode(out.subarray(0, n)) === EVENTPOLL) fds.push(fd);
  }
  return fds;
}

/** Whether two fds of this process share one open file (kcmp(2)). */
function sameFile(a: number, b: number): boolean {
  const pid = BigInt(Deno.pid);
  return libc.syscall(SYS_kcmp, pid, pid, KCMP_FILE, BigInt(a), BigInt(b), 0n) === 0n;
}

/** The fds left when duplicates of an earlier one are dropped (tokio dups its epoll fd). */
function distinct(fds: number[]): number[] {
  return fds.filter((fd, i) => !fds.slice(0, i).some((e) => sameFile(e, fd)));
}

/** Polls fds for POLLIN for up to ns; returns the readable ones. */
function readable(fds: number[], ns: bigint): number[] {
  if (fds.length === 0) return [];
  const set = new Int32Array(fds.length * 2);
  fds.forEach((fd, i) => {
    set[2 * i] = fd;
    set[2 * i + 1] = POLLIN;
  });
  const ts = new BigInt64Array([ns / 1_000_000_000n, ns % 1_000_000_000n]);
  if (ppoll(viewAddress(set), BigInt(fds.length), viewAddress(ts)) <= 0) return [];
  return fds.filter((_, i) => (set[2 * i + 1] >>> 16) !== 0);
}

// The pool thread's ppoll writes into these (revents, and the time left:
// Linux updates ppoll's timespec) while this thread runs on. Held by the
// module: arrays local to a round were garbage once their addresses were
// taken, and a collection meanwhile let the kernel write into freed malloc
// memory (seen as "malloc_consolidate(): unaligned fastbin chunk detected"
// in an experiment built the same way).
const probeSet = new Int32Array(new ArrayBuffer(8));
const probeTs = new BigInt64Array(new ArrayBuffer(16));
const probeSetAddress = viewAddress(probeSet);
const probeTsAddress = viewAddress(probeTs);

/** Sleeps this thread for ns (a ppoll on no fds). */
function sleepNs(ns: bigint): void {
  const ts = new BigInt64Array([ns / 1_000_000_000n, ns % 1_000_000_000n]);
  ppoll(0n, 0n, viewAddress(ts));
}

/**
 * One round: a call on Deno's pool waits for an eventfd; once Deno has
 * started it (a turn), this thread writes the eventfd and blocks until the
 * call has ended (the kernel wrote its revents) and the wake-up it sends
 * this thread's event loop has had time to land, then takes every candidate
 * readable at that moment. The call's end wakes this thread's event loop, so
 * its fd is readable by then (or already was, from a wake-up Deno posted to
 * itself in its last turn and has not consumed yet: the JavaScript after a
 * turn runs before Deno's next epoll_wait). Waiting for the first readable
 * candidate instead let another runtime's fd, readable already, answer
 * alone: the main loop then took another epoll fd for Deno's and gave Deno
 * a turn every iteration (seen while a Worker was starting and kicking the
 * loop). A fd readable regardless stays in every round beside this
 * thread's, and the probe then gives no answer (the loop keeps its older
 * way).
 */
async function probeOnce(candidates: number[], efd: number): Promise<number[]> {
  probeSet[0] = efd;
  probeSet[1] = POLLIN;
  probeTs[0] = 1n;
  probeTs[1] = 0n;
  const call = ppollAsync(probeSetAddress, 1n, probeTsAddress);
  await denoTurn(); // Deno starts the call only when it polls the op
  eventFdWrite(efd);
  const deadline = performance.now() + Number(PROBE_WAIT_NS) / 1e6;
  while ((probeSet[1] >>> 16) === 0 && performance.now() < deadline) sleepNs(POLL_STEP_NS);
  sleepNs(SETTLE_NS);
  const woken = readable(candidates, 0n);
  await call;
  eventFdDrain(efd);
  return woken;
}

async function probe(): Promise<number> {
  const candidates = distinct(eventPollFds());
  if (candidates.length === 0) return -1;
  // Other runtimes' fds are readable only when they happen to have work
  // (or are blocked with work pending): this thread's is readable in every
  // round, and it must be the only one.
  const efd = eventFd();
  try {
    let left = candidates;
    for (let round = 0; round < ROUNDS && (round === 0 || left.length > 1); round++) {
      const woken = await probeOnce(candidates, efd);
      left = left.filter((fd) => woken.includes(fd));
    }
    return left.length === 1 ? left[0] : -1;
  } finally {
    closeFd(efd);
  }
}

/**
 * The epoll fd of this thread's Deno event loop, or -1 when the experiment
 * is not conclusive. Found once per thread (this module's instance).
 *
 * @returns an fd to poll for POLLIN, never to read or close
 */
export function denoReactorFd(): Promise<number> {
  return found ??= probe();
}

/**
 * One turn of Deno's event loop: a message through a fresh MessageChannel is
 * a macrotask, delivered after Deno has polled its timers and ops (39 µs of
 * CPU here, against 70 µs for a zero-timeout ppoll on the blocking pool;
 * setTimeout(0) is clamped to milliseconds). Fresh and closed each time, as
 * an open port would keep the process alive.
 *
 * @returns resolves in Deno's next turn
 */
export function denoTurn(): Promise<void> {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port2.onmessage = () => {
      ch.port2.close();
      resolve();
    };
    ch.port1.postMessage(null);
    ch.port1.close();
  });
}
