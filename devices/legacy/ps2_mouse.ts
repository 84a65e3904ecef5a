/**
 * The PS/2 mouse behind the i8042's AUX port: the command set Linux's
 * psmouse driver uses (drivers/input/mouse/psmouse-base.c, libps2.c), with
 * the IntelliMouse knock (sample rates 200, 100, 80) turning it into a wheel
 * mouse (ID 3, four-byte packets), as QEMU's hw/input/ps2.c emulates.
 *
 * The mouse knows nothing of ports or interrupts: the controller hands it
 * the bytes the guest sends with command 0xd4 ({@link Ps2Mouse.write}) and
 * takes its output one byte at a time ({@link Ps2Mouse.shift}) while its
 * own one-byte output buffer is empty and the AUX port is enabled. The host
 * (VNC) adds motion with {@link Ps2Mouse.input}; all state, the 256-byte
 * output queue included, lives in shared memory (callers hold the big
 * lock). Motion that does not fit the queue stays in the movement counters
 * (bounded) and goes out as the guest drains it, so no flood grows memory.
 *
 * @module
 */
import { checkRegion, type SharedRegion } from "../shared_region.ts";

// Commands (PSMOUSE_CMD_* low bytes, AUX_* in QEMU).
const CMD_SET_SCALE11 = 0xe6;
const CMD_SET_SCALE21 = 0xe7;
const CMD_SET_RES = 0xe8;
const CMD_GET_STATUS = 0xe9;
const CMD_SET_STREAM = 0xea;
const CMD_READ_DATA = 0xeb;
const CMD_RESET_WRAP = 0xec;
const CMD_SET_WRAP = 0xee;
const CMD_SET_REMOTE = 0xf0;
const CMD_GET_ID = 0xf2;
const CMD_SET_RATE = 0xf3;
const CMD_ENABLE = 0xf4;
const CMD_DISABLE = 0xf5;
const CMD_SET_DEFAULTS = 0xf6;
const CMD_RESEND = 0xfe;
const CMD_RESET = 0xff;

// Replies.
const REPLY_ACK = 0xfa;
const REPLY_RESEND = 0xfe;
const REPLY_ERROR = 0xfc;
const REPLY_BAT_OK = 0xaa;

// Status byte (the first byte of the 0xe9 reply).
const STATUS_REMOTE = 0x40;
const STATUS_ENABLED = 0x20;
const STATUS_SCALE21 = 0x10;

/** Bytes the output queue holds (QEMU keeps a 256-byte PS/2 buffer). */
export const PS2_MOUSE_QUEUE_BYTES = 256;
/** Queue bytes kept free for command replies: packets never take them. */
const REPLY_HEADROOM = 8;
/** Movement counters saturate here (a flood is bounded, not queued). */
const COUNTER_LIMIT = 1 << 16;

// Shared state layout: bytes, then 32-bit words, then the queue.
const B_STATUS = 0;
const B_RESOLUTION = 1;
const B_RATE = 2;
const B_WRAP = 3;
const B_ID = 4;
const B_KNOCK = 5; // IntelliMouse knock progress: 0, 1 (200 seen), 2 (200, 100 seen)
const B_PENDING = 6; // command waiting for its parameter (0xe8, 0xf3)
const B_BUTTONS = 7; // packet order: bit 0 left, 1 right, 2 middle
const B_LAST_ERROR = 8; // the byte before was bad (a second bad one gets ERROR)
const B_LAST_BYTE = 9; // last byte taken, for 0xfe
const B_DIRTY = 10; // a button change not yet in a packet
const W_DX = 4; // Int32 index: byte 16
const W_DY = 5; // up is positive, as in the packet
const W_DZ = 6; // wheel: positive is towards the user
const W_HEAD = 7;
const W_COUNT = 8;
const W_PACKETS = 9;
const W_DROPPED = 10;
const W_COALESCED = 11;
const QUEUE_AT = 64;

/** Bytes of shared state a mouse needs. */
export const PS2_MOUSE_STATE_BYTES: number = QUEUE_AT + PS2_MOUSE_QUEUE_BYTES;

/** What became of host input, counted since power-on. */
export interface Ps2MouseStats {
  /** Movement packets queued. */
  packets: number;
  /** Host events dropped because the guest has not enabled reporting. */
  dropped: number;
  /** Host events whose motion waited in the counters for queue room. */
  coalesced: number;
}

/**
 * A PS/2 mouse (IntelliMouse-capable) over shared state.
 *
 * @example
 * ```ts
 * import { Ps2Mouse, PS2_MOUSE_STATE_BYTES } from "./ps2_mouse.ts";
 * const region = { sab: new SharedArrayBuffer(PS2_MOUSE_STATE_BYTES), offset: 0, length: PS2_MOUSE_STATE_BYTES };
 * Ps2Mouse.initState(region);
 * const mouse = new Ps2Mouse(region);
 * mouse.write(0xf2); // get ID
 * console.log(mouse.shift(), mouse.shift()); // 250 0
 * ```
 */
export class Ps2Mouse {
  #b: Uint8Array;
  #w: Int32Array;

  /**
   * Puts a region into the power-on state (after the self-test: ID 0,
   * stream mode, reporting disabled, 100 samples/s, 4 counts/mm).
   *
   * @param region the mouse's shared state
   */
  static initState(region: SharedRegion): void {
    const b = new Uint8Array(checkRegion(region, PS2_MOUSE_STATE_BYTES).sab, region.offset);
    b.fill(0, 0, PS2_MOUSE_STATE_BYTES);
    b[B_RATE] = 100;
    b[B_RESOLUTION] = 2;
  }

  /**
   * Attaches to the shared state; one instance per thread.
   *
   * @param region shared state, initialised by {@link Ps2Mouse.initState}
   */
  constructor(region: SharedRegion) {
    checkRegion(region, PS2_MOUSE_STATE_BYTES);
    this.#b = new Uint8Array(region.sab, region.offset, PS2_MOUSE_STATE_BYTES);
    this.#w = new Int32Array(region.sab, region.offset, QUEUE_AT / 4);
  }

  /** Bytes waiting in the output queue. */
  get pending(): number {
    return this.#w[W_COUNT];
  }

  /** The ID the mouse answers 0xf2 with: 0, or 3 after the IntelliMouse knock. */
  get id(): number {
    return this.#b[B_ID];
  }

  /** Whether the guest enabled data reporting (0xf4). */
  get enabled(): boolean {
    return (this.#b[B_STATUS] & STATUS_ENABLED) !== 0;
  }

  /**
   * Counters of host input.
   *
   * @returns packets queued, events dropped and events coalesced
   */
  stats(): Ps2MouseStats {
    const w = this.#w;
    return { packets: w[W_PACKETS], dropped: w[W_DROPPED], coalesced: w[W_COALESCED] };
  }

  /**
   * Takes the next output byte (the controller calls this when its buffer
   * is free); queued motion moves into room the byte leaves.
   *
   * @returns the byte, or -1 when the queue is empty
   */
  shift(): number {
    const w = this.#w;
    if (w[W_COUNT] === 0) return -1;
    const head = w[W_HEAD];
    const value = this.#b[QUEUE_AT + head];
    w[W_HEAD] = (head + 1) % PS2_MOUSE_QUEUE_BYTES;
    w[W_COUNT]--;
    this.#b[B_LAST_BYTE] = value;
    this.#flush(); // motion that waited for room
    return value;
  }

  /**
   * A byte from the host controller (the guest's 0xd4 command): a command,
   * or the parameter of the one before.
   *
   * @param value the byte
   */
  write(value: number): void {
    const b = this.#b;
    const pending = b[B_PENDING];
    const hadError = b[B_LAST_ERROR];
    b[B_LAST_ERROR] = 0;
    if (pending !== 0) {
      b[B_PENDING] = 0;
      this.#parameter(pending, value, hadError);
      return;
    }
    if (b[B_WRAP] && value !== CMD_RESET_WRAP && value !== CMD_RESET) {
      this.#put(value); // wrap mode echoes everything else
      return;
    }
    switch (value) {
      case CMD_SET_SCALE11:
        b[B_STATUS] &= ~STATUS_SCALE21;
        return this.#put(REPLY_ACK);
      case CMD_SET_SCALE21:
        b[B_STATUS] |= STATUS_SCALE21;
        return this.#put(REPLY_ACK);
      case CMD_SET_RES:
      case CMD_SET_RATE:
        b[B_PENDING] = value;
        return this.#put(REPLY_ACK);
      case CMD_GET_STATUS:
        this.#put(REPLY_ACK);
        // Buttons in the status byte: bit 0 right, 1 middle, 2 left.
        this.#put(b[B_STATUS] | STATUS_BUTTONS[b[B_BUTTONS] & 7]);
        this.#put(b[B_RESOLUTION]);
        return this.#put(b[B_RATE]);
      case CMD_SET_STREAM:
        b[B_STATUS] &= ~STATUS_REMOTE;
        this.#clearCounters();
        return this.#put(REPLY_ACK);
      case CMD_READ_DATA:
        this.#put(REPLY_ACK);
        this.#packet(false);
        return;
      case CMD_RESET_WRAP:
        b[B_WRAP] = 0;
        this.#clearCounters();
        return this.#put(REPLY_ACK);
      case CMD_SET_WRAP:
        b[B_WRAP] = 1;
        this.#clearCounters();
        return this.#put(REPLY_ACK);
      case CMD_SET_REMOTE:
        b[B_STATUS] |= STATUS_REMOTE;
        this.#clearCounters();
        return this.#put(REPLY_ACK);
      case CMD_GET_ID:
        this.#put(REPLY_ACK);
        this.#clearCounters();
        return this.#put(b[B_ID]);
      case CMD_ENABLE:
        b[B_STATUS] |= STATUS_ENABLED;
        this.#clearCounters();
        return this.#put(REPLY_ACK);
      case CMD_DISABLE:
        b[B_STATUS] &= ~STATUS_ENABLED;
        this.#clearCounters();
        return this.#put(REPLY_ACK);
      case CMD_SET_DEFAULTS:
        this.#defaults();
        return this.#put(REPLY_ACK);
      case CMD_RESEND:
        return this.#put(b[B_LAST_BYTE]);
      case CMD_RESET:
        // Output in flight is abandoned; the self-test passes at once.
        this.#w[W_HEAD] = 0;
        this.#w[W_COUNT] = 0;
        this.#defaults();
        b[B_WRAP] = 0;
        b[B_ID] = 0;
        b[B_KNOCK] = 0;
        this.#put(REPLY_ACK);
        this.#put(REPLY_BAT_OK);
        return this.#put(0x00);
      default:
        this.#invalid(hadError);
    }
  }

  /**
   * Host motion and buttons (VNC), in screen terms. Ignored (counted) while
   * the guest has reporting disabled; in stream mode it becomes packets at
   * once where the queue has room, else it waits in the counters.
   *
   * @param dx pixels right
   * @param dy pixels down
   * @param dz wheel notches towards the user (scroll down)
   * @param buttons bit 0 left, 1 right, 2 middle
   */
  input(dx: number, dy: number, dz: number, buttons: number): void {
    const b = this.#b, w = this.#w;
    if (!(b[B_STATUS] & STATUS_ENABLED)) {
      w[W_DROPPED]++;
      return;
    }
    w[W_DX] = clamp(w[W_DX] + dx, COUNTER_LIMIT);
    w[W_DY] = clamp(w[W_DY] - dy, COUNTER_LIMIT);
    w[W_DZ] = clamp(w[W_DZ] + dz, COUNTER_LIMIT);
    if ((b[B_BUTTONS] ^ buttons) & 7) b[B_DIRTY] = 1;
    b[B_BUTTONS] = buttons & 7;
    if (b[B_STATUS] & STATUS_REMOTE) return; // the guest polls with 0xeb
    if (!this.#flush()) w[W_COALESCED]++;
  }

  /** Sends packets while there is news and room; false when some stayed behind. */
  #flush(): boolean {
    const b = this.#b, w = this.#w;
    if ((b[B_STATUS] & (STATUS_ENABLED | STATUS_REMOTE)) !== STATUS_ENABLED || b[B_WRAP]) {
      return true;
    }
    while (b[B_DIRTY] || w[W_DX] !== 0 || w[W_DY] !== 0 || w[W_DZ] !== 0) {
      if (!this.#packet(true)) return false;
    }
    return true;
  }

  /**
   * Queues one movement packet from the counters (at most 255 per axis and
   * 7 wheel notches; the rest stays for the next).
   *
   * @param stream apply 2:1 scaling and keep reply headroom
   * @returns false when the queue had no room
   */
  #packet(stream: boolean): boolean {
    const b = this.#b, w = this.#w;
    const size = b[B_ID] === 3 ? 4 : 3;
    const room = PS2_MOUSE_QUEUE_BYTES - w[W_COUNT] - (stream ? REPLY_HEADROOM : 0);
    if (room < size) return false;
    const dx = clamp(w[W_DX], 255), dy = clamp(w[W_DY], 255), dz = clamp(w[W_DZ], 7);
    w[W_DX] -= dx;
    w[W_DY] -= dy;
    w[W_DZ] -= dz;
    const scale = stream && (b[B_STATUS] & STATUS_SCALE21) !== 0;
    const sx = scale ? scale21(dx) : dx, sy = scale ? scale21(dy) : dy;
    const xOver = sx > 255 || sx < -256 ? 0x40 : 0, yOver = sy > 255 || sy < -256 ? 0x80 : 0;
    const px = clamp(sx, 255), py = clamp(sy, 255);
    this.#put(0x08 | yOver | xOver | (py < 0 ? 0x20 : 0) | (px < 0 ? 0x10 : 0) | b[B_BUTTONS]);
    this.#put(px & 0xff);
    this.#put(py & 0xff);
    if (size === 4) this.#put(dz & 0xff);
    b[B_DIRTY] = 0;
    w[W_PACKETS]++;
    return true;
  }

  #parameter(cmd: number, value: number, hadError: number): void {
    const b = this.#b;
    if (cmd === CMD_SET_RES) {
      if (value > 3) return this.#invalid(hadError);
      b[B_RESOLUTION] = value;
      this.#clearCounters();
      return this.#put(REPLY_ACK);
    }
    // CMD_SET_RATE: any rate is taken (as QEMU); 200, 100, 80 is the knock.
    b[B_RATE] = value;
    const knock = b[B_KNOCK];
    if (knock === 0) b[B_KNOCK] = value === 200 ? 1 : 0;
    else if (knock === 1) b[B_KNOCK] = value === 100 ? 2 : value === 200 ? 1 : 0;
    else {
      if (value === 80) b[B_ID] = 3;
      b[B_KNOCK] = value === 200 ? 1 : 0;
    }
    this.#put(REPLY_ACK);
  }

  /** A byte the mouse does not take: RESEND, or ERROR when the one before was bad too. */
  #invalid(hadError: number): void {
    this.#put(hadError ? REPLY_ERROR : REPLY_RESEND);
    this.#b[B_LAST_ERROR] = 1;
  }

  #defaults(): void {
    const b = this.#b;
    b[B_STATUS] = 0; // stream mode, 1:1, reporting disabled
    b[B_RATE] = 100;
    b[B_RESOLUTION] = 2;
    b[B_PENDING] = 0;
    this.#clearCounters();
  }

  #clearCounters(): void {
    const w = this.#w;
    this.#b[B_DIRTY] = 0;
    w[W_DX] = 0;
    w[W_DY] = 0;
    w[W_DZ] = 0;
  }

  /** Queues a byte; a full queue drops it (only a guest ignoring replies fills it). */
  #put(value: number): void {
    const w = this.#w;
    if (w[W_COUNT] >= PS2_MOUSE_QUEUE_BYTES) return;
    this.#b[QUEUE_AT + (w[W_HEAD] + w[W_COUNT]) % PS2_MOUSE_QUEUE_BYTES] = value;
    w[W_COUNT]++;
  }
}

/** Packet button bits (left, right, middle) to status byte bits (right, middle, left). */
const STATUS_BUTTONS = [0, 4, 1, 5, 2, 6, 3, 7];

function clamp(v: number, limit: number): number {
  return v > limit ? limit : v < -limit ? -limit : v;
}

/** 2:1 scaling of one movement count (the PS/2 table: 1 1 3 6 9, then double). */
function scale21(v: number): number {
  const a = Math.abs(v);
  const s = a <= 1 ? a : a === 2 ? 1 : a === 3 ? 3 : a === 4 ? 6 : a === 5 ? 9 : 2 * a;
  return v < 0 ? -s : s;
}
