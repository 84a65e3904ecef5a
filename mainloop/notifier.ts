/**
 * The wake-up channel of a loop: an eventfd plus a shared "already notified"
 * word, so that many notifications between two polls cost one write(2).
 *
 * @module
 */
import { eventFd, eventFdDrain, eventFdWrite } from "../sys/fd.ts";
import { closeFd } from "../sys/fd.ts";

/** Index of the notified flag in a loop's shared Int32Array. */
export const NOTIFY_WORD = 0;

/**
 * Wakes a loop from another thread: sets the shared flag and writes the
 * eventfd only when the flag was clear. Usable in any Worker.
 *
 * @param words the loop's shared state (see {@link EventNotifier.words})
 * @param fd the loop's eventfd
 * @example
 * ```ts
 * import { EventNotifier, notifyShared } from "./notifier.ts";
 * const n = new EventNotifier();
 * notifyShared(n.words, n.fd);
 * n.close();
 * ```
 */
export function notifyShared(words: Int32Array, fd: number): void {
  if (Atomics.exchange(words, NOTIFY_WORD, 1) === 0) eventFdWrite(fd);
}

/** An eventfd with a coalescing flag in shared memory (QEMU's EventNotifier + notify_me). */
export class EventNotifier {
  /** The eventfd the loop polls. */
  readonly fd: number;
  /** Shared words: [0] is the notified flag; callers may use the rest. */
  readonly words: Int32Array<SharedArrayBuffer>;

  /**
   * @param words shared words to use (word 0 is the flag); allocated if absent
   * @example
   * ```ts
   * import { EventNotifier } from "./notifier.ts";
   * const n = new EventNotifier();
   * n.arm();
   * n.notify();
   * n.drain();
   * n.close();
   * ```
   */
  constructor(words?: Int32Array<SharedArrayBuffer>) {
    this.words = words ?? new Int32Array(new SharedArrayBuffer(4));
    this.fd = eventFd();
  }

  /** Wakes the loop; safe from any thread that holds the words and fd. */
  notify(): void {
    notifyShared(this.words, this.fd);
  }

  /**
   * Clears the flag; the loop calls this right before it checks for pending
   * work and sleeps. A notifier that comes later writes the eventfd and wakes
   * it; one that came earlier published its work before setting the flag, so
   * the loop's check sees that work. (Clearing when the eventfd is drained
   * instead can leave the flag set with the eventfd empty, and every later
   * notification would be skipped.)
   */
  arm(): void {
    Atomics.store(this.words, NOTIFY_WORD, 0);
  }

  /** Drains the eventfd after it polled readable. */
  drain(): void {
    eventFdDrain(this.fd);
  }

  /** Closes the eventfd. */
  close(): void {
    closeFd(this.fd);
  }
}
