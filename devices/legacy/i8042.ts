/**
 * The PS/2 controller (i8042) at ports 0x60 (data) and 0x64 (status and
 * command), with a keyboard that answers commands and types what the host
 * sends, and a PS/2 mouse on the AUX port (ps2_mouse.ts) that moves as the
 * host says.
 *
 * What Linux does with it (drivers/input/serio/i8042.c, atkbd.c, and
 * arch/x86/kernel/reboot.c):
 * - probe: flush (read status/data while OBF), self-test 0xaa -> 0x55, read
 *   and write the control register (0x20/0x60), AUX loop 0xd3 (must come back
 *   with the AUXDATA status bit and, during the IRQ test, on IRQ 12), AUX
 *   enable/disable (0xa8/0xa7) checked through the control register. The MUX
 *   test fails on its third loop byte (we echo it unchanged).
 * - keys from the host (VNC) go in with {@link I8042.pushKeyboard}.
 * - atkbd: reset 0xff -> fa aa, identify 0xf2 -> fa ab 83 (41 when
 *   translating), LEDs/rate/set with parameters -> fa.
 * - psmouse: bytes for the mouse (0xd4, which also re-enables the AUX port,
 *   as QEMU's pckbd does) go to the {@link Ps2Mouse}; its replies and
 *   movement packets come out of port 0x60 with the AUXDATA status bit and
 *   IRQ 12, one byte at a time: a mouse byte enters the output buffer only
 *   when the buffer is empty and the AUX port is enabled (CTR bit 5 clear),
 *   so keyboard and mouse bytes interleave byte by byte, each with its own
 *   status bit and interrupt. Host motion: {@link I8042.pushMouse}.
 * - reboot (BOOT_KBD, the fallback when ACPI reset is absent): 0xfe to port
 *   0x64 pulses the CPU reset line -> SystemEvents.reset().
 *
 * Ports 0x61 (PC speaker / PIT channel 2 gate) and 0x40-0x43 belong to KVM's
 * in-kernel PIT (KVM_CREATE_PIT2; 0x61 only with KVM_PIT_SPEAKER_DUMMY), so
 * they are not claimed here.
 *
 * @module
 */
import type { BusDevice } from "../bus.ts";
import type { IrqLine } from "../irq.ts";
import { checkRegion, type SharedRegion } from "../shared_region.ts";
import { PS2_MOUSE_STATE_BYTES, Ps2Mouse } from "./ps2_mouse.ts";
import type { SystemEvents } from "./system_events.ts";

// Status register bits (I8042_STR_*).
const I8042_STR_OBF = 0x01;
const I8042_STR_SYSFLAG = 0x04;
const I8042_STR_CMDDAT = 0x08;
const I8042_STR_KEYLOCK = 0x10; // set: keyboard not inhibited
const I8042_STR_AUXDATA = 0x20;

// Control register bits (I8042_CTR_*).
const I8042_CTR_KBDINT = 0x01;
const I8042_CTR_AUXINT = 0x02;
const I8042_CTR_SYSFLAG = 0x04;
const I8042_CTR_KBDDIS = 0x10;
const I8042_CTR_AUXDIS = 0x20;
const I8042_CTR_XLATE = 0x40;

// Controller commands (I8042_CMD_* low bytes).
const CMD_CTL_RCTR = 0x20;
const CMD_CTL_WCTR = 0x60;
const CMD_AUX_DISABLE = 0xa7;
const CMD_AUX_ENABLE = 0xa8;
const CMD_AUX_TEST = 0xa9;
const CMD_CTL_TEST = 0xaa;
const CMD_KBD_TEST = 0xab;
const CMD_KBD_DISABLE = 0xad;
const CMD_KBD_ENABLE = 0xae;
const CMD_READ_INPUT = 0xc0;
const CMD_READ_OUTPUT = 0xd0;
const CMD_WRITE_OUTPUT = 0xd1;
const CMD_KBD_LOOP = 0xd2;
const CMD_AUX_LOOP = 0xd3;
const CMD_AUX_SEND = 0xd4;
const CMD_A20_DISABLE = 0xdd;
const CMD_A20_ENABLE = 0xdf;

// Output port bits.
const OUTPORT_RESET = 0x01; // 0 holds the CPU in reset
const OUTPORT_A20 = 0x02;

// Keyboard commands and replies.
const KBD_CMD_SET_LEDS = 0xed;
const KBD_CMD_ECHO = 0xee;
const KBD_CMD_SCANCODE = 0xf0;
const KBD_CMD_GET_ID = 0xf2;
const KBD_CMD_SET_RATE = 0xf3;
const KBD_CMD_RESET = 0xff;
const KBD_REPLY_ACK = 0xfa;
const KBD_REPLY_RESEND = 0xfe;
const KBD_REPLY_POR = 0xaa;

/** Bytes the output queue holds (Linux flushes at most 16). */
const QUEUE_SIZE = 16;

// Queue entry flags.
const Q_AUX = 1;

// Shared state layout (bytes).
const S_CTR = 0;
const S_STATUS = 1; // SYSFLAG and CMDDAT
const S_PENDING_CMD = 2; // controller command waiting for its data byte
const S_KBD_PENDING = 3; // keyboard command waiting for its parameter
const S_OUTPORT = 4;
const S_Q_HEAD = 5;
const S_Q_COUNT = 6;
const S_KBD_LEVEL = 7;
const S_AUX_LEVEL = 8;
const S_LAST_DATA = 9;
const S_SCANCODE_SET = 10;
const S_QUEUE = 16;
const S_QUEUE_FLAGS = S_QUEUE + QUEUE_SIZE;
const S_MOUSE = 64; // the mouse's own state (8-byte aligned)

/** Bytes of shared state the controller and its mouse need. */
export const I8042_STATE_BYTES: number = S_MOUSE + PS2_MOUSE_STATE_BYTES;

/** Data port. */
export const I8042_DATA_PORT = 0x60;
/** Status (read) and command (write) port. */
export const I8042_COMMAND_PORT = 0x64;

/** What an I8042 is built from besides its shared state. */
export interface I8042Options {
  /** Keyboard interrupt (GSI 1). */
  kbdIrq: IrqLine;
  /** Mouse interrupt (GSI 12). */
  auxIrq: IrqLine;
  /** Receives the reset request. */
  events: SystemEvents;
}

/**
 * The i8042 controller. Insert `dataPort` at 0x60 and `commandPort` at 0x64
 * (one byte each); callers hold the big lock.
 *
 * @example
 * ```ts
 * import { I8042, I8042_STATE_BYTES } from "./i8042.ts";
 * import { FakeIrqLine } from "../irq.ts";
 * import { RecordingSystemEvents } from "./system_events.ts";
 * const region = { sab: new SharedArrayBuffer(I8042_STATE_BYTES), offset: 0, length: I8042_STATE_BYTES };
 * I8042.initState(region);
 * const events = new RecordingSystemEvents();
 * const kbc = new I8042(region, { kbdIrq: new FakeIrqLine(), auxIrq: new FakeIrqLine(), events });
 * kbc.commandPort.write(0, new Uint8Array([0xfe]));
 * console.log(events.events); // ["reset"]
 * ```
 */
export class I8042 {
  #s: Uint8Array;
  #region: SharedRegion;
  #kbdIrq: IrqLine;
  #auxIrq: IrqLine;
  #events: SystemEvents;

  /** The mouse on the AUX port. */
  readonly mouse: Ps2Mouse;
  /** The data port (0x60) as a bus device. */
  readonly dataPort: BusDevice;
  /** The status/command port (0x64) as a bus device. */
  readonly commandPort: BusDevice;

  /**
   * Puts a region into the power-on state: keyboard interrupt on,
   * translation on, as a BIOS leaves it.
   *
   * @param region the controller's shared state
   */
  static initState(region: SharedRegion): void {
    const s = new Uint8Array(checkRegion(region, I8042_STATE_BYTES).sab, region.offset);
    s.fill(0, 0, I8042_STATE_BYTES);
    s[S_CTR] = I8042_CTR_KBDINT | I8042_CTR_AUXINT | I8042_CTR_XLATE | I8042_CTR_SYSFLAG;
    s[S_STATUS] = I8042_STR_SYSFLAG;
    s[S_OUTPORT] = OUTPORT_RESET | OUTPORT_A20;
    s[S_SCANCODE_SET] = 2;
    Ps2Mouse.initState(mouseRegion(region));
  }

  /**
   * Attaches to the shared state; one instance per thread.
   *
   * @param region shared state, initialised by {@link I8042.initState}
   * @param options interrupt lines and the reset sink
   */
  constructor(region: SharedRegion, options: I8042Options) {
    checkRegion(region, I8042_STATE_BYTES);
    this.#region = { sab: region.sab, offset: region.offset, length: region.length };
    this.#s = new Uint8Array(region.sab, region.offset, I8042_STATE_BYTES);
    this.#kbdIrq = options.kbdIrq;
    this.#auxIrq = options.auxIrq;
    this.#events = options.events;
    this.mouse = new Ps2Mouse(mouseRegion(region));
    this.dataPort = new I8042Port(this, false);
    this.commandPort = new I8042Port(this, true);
  }

  /** The plain state other threads build their I8042 from. */
  get state(): SharedRegion {
    return this.#region;
  }

  /**
   * The status register.
   *
   * @returns OBF and AUXDATA for the byte at the head of the queue
   */
  readStatus(): number {
    const s = this.#s;
    let status = (s[S_STATUS] & (I8042_STR_SYSFLAG | I8042_STR_CMDDAT)) | I8042_STR_KEYLOCK;
    if (s[S_Q_COUNT] > 0) {
      status |= I8042_STR_OBF;
      if (s[S_QUEUE_FLAGS + s[S_Q_HEAD]] & Q_AUX) status |= I8042_STR_AUXDATA;
    }
    return status;
  }

  /**
   * Reads the output buffer: the next queued byte, or the last one again
   * when empty (as the latch does).
   *
   * @returns the byte
   */
  readData(): number {
    const s = this.#s;
    if (s[S_Q_COUNT] === 0) return s[S_LAST_DATA];
    const head = s[S_Q_HEAD];
    const value = s[S_QUEUE + head];
    s[S_LAST_DATA] = value;
    s[S_Q_HEAD] = (head + 1) % QUEUE_SIZE;
    s[S_Q_COUNT]--;
    // Emptying the buffer drops the line; the next byte raises it again, so
    // an edge-triggered IOAPIC pin sees one edge per byte.
    this.#setLevels(0, 0);
    this.#pullMouse();
    this.#updateIrq();
    return value;
  }

  /**
   * Host pointer motion for the PS/2 mouse (see {@link Ps2Mouse.input});
   * its packets follow into the output buffer. Caller holds the big lock.
   *
   * @param dx pixels right
   * @param dy pixels down
   * @param dz wheel notches towards the user
   * @param buttons bit 0 left, 1 right, 2 middle
   */
  pushMouse(dx: number, dy: number, dz: number, buttons: number): void {
    this.mouse.input(dx, dy, dz, buttons);
    this.#pullMouse();
  }

  /**
   * Bytes the keyboard sends on its own (a host key press, already in the
   * scancode set the guest expects, see {@link I8042.translating}). They
   * queue behind earlier bytes; none go in while the keyboard is disabled
   * or a command's reply is pending, and at most half the buffer is used,
   * so command replies always fit. Caller holds the big lock.
   *
   * @param bytes scancode bytes
   * @returns how many were queued (the caller retries the rest later)
   */
  pushKeyboard(bytes: Uint8Array): number {
    const s = this.#s;
    if (s[S_CTR] & I8042_CTR_KBDDIS || s[S_KBD_PENDING] !== 0) return 0;
    let n = 0;
    while (n < bytes.length && s[S_Q_COUNT] < QUEUE_SIZE / 2) this.#push(bytes[n++], 0);
    return n;
  }

  /** Whether the controller translates to scancode set 1 (what Linux leaves on). */
  get translating(): boolean {
    return (this.#s[S_CTR] & I8042_CTR_XLATE) !== 0;
  }

  /**
   * A write to port 0x64.
   *
   * @param cmd the controller command
   */
  writeCommand(cmd: number): void {
    const s = this.#s;
    s[S_STATUS] |= I8042_STR_CMDDAT;
    s[S_PENDING_CMD] = 0;
    if (cmd >= 0x20 && cmd < 0x40) { // read internal RAM; byte 0 is the CTR
      this.#push(cmd === CMD_CTL_RCTR ? s[S_CTR] : 0, 0);
      return;
    }
    if (cmd >= 0xf0) { // pulse output lines; bit 0 clear pulses CPU reset
      if (!(cmd & 1)) this.#events.reset();
      return;
    }
    switch (cmd) {
      case CMD_AUX_DISABLE:
        s[S_CTR] |= I8042_CTR_AUXDIS;
        return;
      case CMD_AUX_ENABLE:
        s[S_CTR] &= ~I8042_CTR_AUXDIS;
        this.#pullMouse();
        return;
      case CMD_AUX_TEST:
      case CMD_KBD_TEST:
        this.#push(0x00, 0);
        return;
      case CMD_CTL_TEST:
        s[S_STATUS] |= I8042_STR_SYSFLAG;
        this.#push(0x55, 0);
        return;
      case CMD_KBD_DISABLE:
        s[S_CTR] |= I8042_CTR_KBDDIS;
        return;
      case CMD_KBD_ENABLE:
        s[S_CTR] &= ~I8042_CTR_KBDDIS;
        return;
      case CMD_READ_INPUT:
        this.#push(0x00, 0);
        return;
      case CMD_READ_OUTPUT:
        this.#push(s[S_OUTPORT], 0);
        return;
      case CMD_A20_DISABLE:
        s[S_OUTPORT] &= ~OUTPORT_A20;
        return;
      case CMD_A20_ENABLE:
        s[S_OUTPORT] |= OUTPORT_A20;
        return;
      default:
        // 0x60-0x7f write RAM, 0xd1-0xd4 take a data byte; others are ignored.
        if ((cmd >= 0x60 && cmd < 0x80) || (cmd >= CMD_WRITE_OUTPUT && cmd <= CMD_AUX_SEND)) {
          s[S_PENDING_CMD] = cmd;
        }
    }
  }

  /**
   * A write to port 0x60: a controller command's data byte, or a byte for
   * the keyboard.
   *
   * @param value the byte
   */
  writeData(value: number): void {
    const s = this.#s;
    s[S_STATUS] &= ~I8042_STR_CMDDAT;
    const cmd = s[S_PENDING_CMD];
    s[S_PENDING_CMD] = 0;
    switch (cmd) {
      case 0:
        this.#keyboardWrite(value);
        return;
      case CMD_CTL_WCTR:
        s[S_CTR] = value;
        this.#pullMouse();
        this.#updateIrq();
        return;
      case CMD_WRITE_OUTPUT:
        s[S_OUTPORT] = value;
        if (!(value & OUTPORT_RESET)) this.#events.reset();
        return;
      case CMD_KBD_LOOP:
        this.#push(value, 0);
        return;
      case CMD_AUX_LOOP:
        this.#push(value, Q_AUX);
        return;
      case CMD_AUX_SEND:
        // Writing to the mouse re-enables its clock line (AUXDIS off).
        s[S_CTR] &= ~I8042_CTR_AUXDIS;
        this.mouse.write(value);
        this.#pullMouse();
        return;
      default: // other internal RAM bytes
        return;
    }
  }

  #keyboardWrite(value: number): void {
    const s = this.#s;
    const pending = s[S_KBD_PENDING];
    if (pending !== 0) {
      s[S_KBD_PENDING] = 0;
      this.#push(KBD_REPLY_ACK, 0);
      if (pending === KBD_CMD_SCANCODE) {
        if (value === 0) this.#push(s[S_SCANCODE_SET], 0);
        else if (value <= 3) s[S_SCANCODE_SET] = value;
      }
      return;
    }
    switch (value) {
      case KBD_CMD_RESET:
        s[S_SCANCODE_SET] = 2;
        this.#push(KBD_REPLY_ACK, 0);
        this.#push(KBD_REPLY_POR, 0);
        return;
      case KBD_CMD_GET_ID:
        this.#push(KBD_REPLY_ACK, 0);
        this.#push(0xab, 0);
        this.#push(s[S_CTR] & I8042_CTR_XLATE ? 0x41 : 0x83, 0);
        return;
      case KBD_CMD_ECHO:
        this.#push(KBD_CMD_ECHO, 0);
        return;
      case KBD_CMD_SET_LEDS:
      case KBD_CMD_SET_RATE:
      case KBD_CMD_SCANCODE:
        s[S_KBD_PENDING] = value;
        this.#push(KBD_REPLY_ACK, 0);
        return;
      default:
        // 0xf4-0xfe (enable, disable, defaults, typematic modes, resend).
        this.#push(value >= 0xf4 ? KBD_REPLY_ACK : KBD_REPLY_RESEND, 0);
    }
  }

  /**
   * Moves one mouse byte into the output buffer when the buffer is empty
   * and the AUX port is enabled (a real controller takes the next device
   * byte only then; a disabled port holds the mouse's clock line).
   */
  #pullMouse(): void {
    const s = this.#s;
    if (s[S_Q_COUNT] !== 0 || s[S_CTR] & I8042_CTR_AUXDIS || this.mouse.pending === 0) return;
    this.#push(this.mouse.shift(), Q_AUX);
  }

  #push(value: number, flags: number): void {
    const s = this.#s;
    if (s[S_Q_COUNT] >= QUEUE_SIZE) return; // overflow: drop, as a full buffer does
    const at = (s[S_Q_HEAD] + s[S_Q_COUNT]) % QUEUE_SIZE;
    s[S_QUEUE + at] = value;
    s[S_QUEUE_FLAGS + at] = flags;
    s[S_Q_COUNT]++;
    this.#updateIrq();
  }

  #updateIrq(): void {
    const s = this.#s;
    let kbd = 0, aux = 0;
    if (s[S_Q_COUNT] > 0) {
      if (s[S_QUEUE_FLAGS + s[S_Q_HEAD]] & Q_AUX) aux = s[S_CTR] & I8042_CTR_AUXINT ? 1 : 0;
      else kbd = s[S_CTR] & I8042_CTR_KBDINT ? 1 : 0;
    }
    this.#setLevels(kbd, aux);
  }

  #setLevels(kbd: number, aux: number): void {
    const s = this.#s;
    if (s[S_KBD_LEVEL] !== kbd) {
      s[S_KBD_LEVEL] = kbd;
      this.#kbdIrq.set(kbd === 1);
    }
    if (s[S_AUX_LEVEL] !== aux) {
      s[S_AUX_LEVEL] = aux;
      this.#auxIrq.set(aux === 1);
    }
  }
}

/** The mouse's part of the controller's shared state. */
function mouseRegion(region: SharedRegion): SharedRegion {
  return { sab: region.sab, offset: region.offset + S_MOUSE, length: PS2_MOUSE_STATE_BYTES };
}

/** One of the controller's two ports, as a bus device. */
class I8042Port implements BusDevice {
  #kbc: I8042;
  #command: boolean;

  constructor(kbc: I8042, command: boolean) {
    this.#kbc = kbc;
    this.#command = command;
  }

  read(_offset: number, data: Uint8Array): void {
    data[0] = this.#command ? this.#kbc.readStatus() : this.#kbc.readData();
    for (let i = 1; i < data.length; i++) data[i] = 0xff;
  }

  write(_offset: number, data: Uint8Array): void {
    if (data.length === 0) return;
    if (this.#command) this.#kbc.writeCommand(data[0]);
    else this.#kbc.writeData(data[0]);
  }
}
