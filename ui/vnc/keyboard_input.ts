/**
 * RFB key events into the guest's PS/2 keyboard: keysyms become set-1
 * scancodes (what the i8042 delivers while translating, as Linux leaves
 * it), queued on the host and fed into the controller as it drains, so a
 * fast typist (or a pasted line) never overflows its 16-byte buffer.
 *
 * @module
 */
import { keysymToSet1, set1Bytes } from "./keymap.ts";
import type { EventLoop, Timer } from "../../mainloop/types.ts";

/** The controller as this adapter needs it (I8042 under the big lock). */
export interface KeyboardPort {
  /** Queues scancode bytes; returns how many fit. */
  push(bytes: Uint8Array): number;
  /** Whether the controller translates to set 1. */
  translating(): boolean;
}

/** Most bytes waiting on the host before new keys are dropped. */
export const MAX_PENDING = 4096;

/**
 * Feeds keys into the i8042 from the main loop.
 *
 * @example
 * ```ts ignore
 * const kbd = new Ps2KeyboardInput(loop, { push: (b) => locked(() => i8042.pushKeyboard(b)), translating: () => i8042.translating });
 * kbd.key(true, 0x61);
 * ```
 */
export class Ps2KeyboardInput {
  #port: KeyboardPort;
  #pending: number[] = [];
  #timer: Timer;
  #loop: EventLoop;
  #warned = false;

  /**
   * @param loop the main loop (retries run there)
   * @param port the controller
   */
  constructor(loop: EventLoop, port: KeyboardPort) {
    this.#loop = loop;
    this.#port = port;
    this.#timer = loop.timer("host", () => this.#drain());
  }

  /**
   * A KeyEvent.
   *
   * @param down pressed or released
   * @param keysym X keysym
   */
  key(down: boolean, keysym: number): void {
    const bytes = keysymToSet1(keysym, down);
    if (bytes) this.#push(bytes);
  }

  /**
   * A key by its code (QMP send-key).
   *
   * @param code set-1 make code, with EXTENDED_KEY for an extended key (keymap.ts)
   * @param down pressed or released
   */
  keyCode(code: number, down: boolean): void {
    this.#push(set1Bytes(code, down));
  }

  #push(bytes: Uint8Array): void {
    if (!this.#port.translating()) {
      if (!this.#warned) {
        console.error("i8042: the guest turned translation off; host key events dropped");
      }
      this.#warned = true;
      return;
    }
    if (this.#pending.length + bytes.length > MAX_PENDING) return;
    this.#pending.push(...bytes);
    this.#drain();
  }

  /** Bytes still waiting for room in the controller. */
  get pending(): number {
    return this.#pending.length;
  }

  #drain(): void {
    if (this.#pending.length === 0) return;
    const n = this.#port.push(new Uint8Array(this.#pending));
    this.#pending.splice(0, n);
    if (this.#pending.length > 0 && !this.#timer.pending) {
      this.#timer.mod(this.#loop.now("host") + 2e6);
    }
  }

  /** Stops retrying. */
  close(): void {
    this.#timer.del();
    this.#pending = [];
  }
}
