/**
 * A 16550A UART (COM1: port 0x3f8, IRQ 4), the guest console.
 *
 * Registers live in shared memory so every vCPU Worker can handle the
 * guest's `inb`/`outb` itself; callers hold the big lock around read/write.
 * Transmission is instantaneous: a THR write goes straight to the sink and
 * the transmitter is empty again at once, so THRE/TEMT always read as set.
 *
 * Linux's 8250 driver (drivers/tty/serial/8250/8250_port.c) relies on:
 * - autoconfig: IER reads back its low nibble only (bit 6 must not stick, or
 *   it is taken for an XScale UART), the loopback MSR test (MCR=0x1a reads
 *   MSR&0xf0 == 0x90), FCR=1 makes IIR bits 7:6 read 0b11 (16550A);
 * - startup: the THRE test (UART_BUG_THRE / UART_BUG_TXEN) that sets
 *   IER.THRI with THR empty and expects IIR to report THRI at once, after
 *   a read of IIR has cleared it and IER went 0 and back;
 * - the interrupt handler loops until IIR reads "no interrupt", which lowers
 *   the line, so every new event makes a fresh edge on the ISA IRQ.
 *
 * @module
 */
import type { BusDevice } from "../bus.ts";
import type { IrqLine } from "../irq.ts";
import type { BigLock } from "../big_lock.ts";
import { checkRegion, type SharedRegion } from "../shared_region.ts";

// Register offsets (include/uapi/linux/serial_reg.h names).
const UART_RX = 0; // RBR, read, DLAB=0
const UART_IER = 1;
const UART_IIR = 2; // read
const UART_LCR = 3;
const UART_MCR = 4;
const UART_LSR = 5;
const UART_MSR = 6;
const UART_SCR = 7;

const UART_IER_RDI = 0x01;
const UART_IER_THRI = 0x02;
const UART_IER_RLSI = 0x04;
const UART_IER_MSI = 0x08;

const UART_IIR_NO_INT = 0x01;
const UART_IIR_MSI = 0x00;
const UART_IIR_THRI = 0x02;
const UART_IIR_RDI = 0x04;
const UART_IIR_RLSI = 0x06;
const UART_IIR_TIMEOUT = 0x0c;
const UART_IIR_FIFO_ENABLED = 0xc0;

const UART_FCR_ENABLE_FIFO = 0x01;
const UART_FCR_CLEAR_RCVR = 0x02;
const UART_FCR_DMA_SELECT = 0x08;
const UART_FCR_TRIGGER_MASK = 0xc0;

const UART_LCR_DLAB = 0x80;

const UART_MCR_DTR = 0x01;
const UART_MCR_RTS = 0x02;
const UART_MCR_OUT1 = 0x04;
const UART_MCR_OUT2 = 0x08;
const UART_MCR_LOOP = 0x10;

const UART_LSR_DR = 0x01;
const UART_LSR_OE = 0x02;
const UART_LSR_BRK_ERROR_BITS = 0x1e; // OE | PE | FE | BI
const UART_LSR_THRE = 0x20;
const UART_LSR_TEMT = 0x40;

const UART_MSR_DCTS = 0x01;
const UART_MSR_DDSR = 0x02;
const UART_MSR_TERI = 0x04;
const UART_MSR_DDCD = 0x08;
const UART_MSR_CTS = 0x10;
const UART_MSR_DSR = 0x20;
const UART_MSR_RI = 0x40;
const UART_MSR_DCD = 0x80;
const UART_MSR_DELTA = 0x0f;

/** Modem inputs when not in loopback: a cable with the other end ready. */
const MSR_CONNECTED = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;

/** Receive FIFO depth of a 16550A. */
export const SERIAL_FIFO_SIZE = 16;

// Layout of the shared state (bytes).
const S_IER = 0;
const S_FCR = 1;
const S_LCR = 2;
const S_MCR = 3;
const S_LSR = 4;
const S_MSR = 5;
const S_SCR = 6;
const S_DLL = 7;
const S_DLM = 8;
const S_THR_IPENDING = 9;
const S_RX_HEAD = 10;
const S_RX_COUNT = 11;
const S_IRQ_LEVEL = 12;
const S_INPUT_REFUSED = 13;
const S_RX_FIFO = 16;

/** Bytes of shared state one UART needs. */
export const SERIAL_STATE_BYTES: number = S_RX_FIFO + SERIAL_FIFO_SIZE;

/** Divisor latch after reset: 9600 baud from the 1.8432 MHz clock. */
const DEFAULT_DIVISOR = 12;

/** Receive trigger levels selected by FCR bits 7:6. */
const TRIGGER_LEVELS = [1, 4, 8, 14];

/** What a Serial is built from besides its shared state. */
export interface SerialOptions {
  /** The UART's interrupt line (GSI 4 for COM1). */
  irq: IrqLine;
  /** Receives each transmitted byte, in the thread that took the exit. */
  sink: (byte: number) => void;
  /** Taken by enqueueInput(); re-entrant, so callers may hold it already. */
  lock?: BigLock;
  /**
   * Called (under the lock, in a vCPU thread) when the guest has drained a
   * receive FIFO that earlier refused input, so the host can send the rest.
   */
  onAcceptInput?: () => void;
}

/**
 * A 16550A UART over shared state. Build one per thread over the same
 * region; call {@link Serial.initState} once before.
 *
 * @example
 * ```ts
 * import { Serial, SERIAL_STATE_BYTES } from "./serial.ts";
 * import { FakeIrqLine } from "../irq.ts";
 * const region = { sab: new SharedArrayBuffer(64), offset: 0, length: SERIAL_STATE_BYTES };
 * Serial.initState(region);
 * const out: number[] = [];
 * const uart = new Serial(region, { irq: new FakeIrqLine(), sink: (b) => out.push(b) });
 * uart.write(0, new Uint8Array([0x41])); // THR
 * console.log(String.fromCharCode(...out)); // "A"
 * ```
 */
export class Serial implements BusDevice {
  #s: Uint8Array;
  #region: SharedRegion;
  #irq: IrqLine;
  #sink: (byte: number) => void;
  #lock: BigLock | undefined;
  #onAcceptInput: (() => void) | undefined;

  /**
   * Puts a region into the power-on state (before any Serial uses it).
   *
   * @param region the UART's shared state
   */
  static initState(region: SharedRegion): void {
    const s = new Uint8Array(checkRegion(region, SERIAL_STATE_BYTES).sab, region.offset);
    s.fill(0, 0, SERIAL_STATE_BYTES);
    s[S_LSR] = UART_LSR_THRE | UART_LSR_TEMT;
    s[S_MSR] = MSR_CONNECTED;
    s[S_DLL] = DEFAULT_DIVISOR;
  }

  /**
   * Attaches to the shared state; one instance per thread.
   *
   * @param region shared state, initialised by {@link Serial.initState}
   * @param options interrupt line, output sink, lock
   */
  constructor(region: SharedRegion, options: SerialOptions) {
    checkRegion(region, SERIAL_STATE_BYTES);
    this.#region = { sab: region.sab, offset: region.offset, length: region.length };
    this.#s = new Uint8Array(region.sab, region.offset, SERIAL_STATE_BYTES);
    this.#irq = options.irq;
    this.#sink = options.sink;
    this.#lock = options.lock;
    this.#onAcceptInput = options.onAcceptInput;
  }

  /** The plain state other threads build their Serial from. */
  get state(): SharedRegion {
    return this.#region;
  }

  /** Back to the power-on state, lowering the interrupt (system reset). */
  reset(): void {
    Serial.initState(this.#region);
    this.#updateIrq();
  }

  /**
   * Guest read of `data.length` registers from `offset` (a wide access
   * reads consecutive registers, as on an 8-bit ISA bus).
   *
   * @param offset register offset from the base
   * @param data filled with the register values
   */
  read(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const reg = offset + i;
      data[i] = reg < 8 ? this.#readReg(reg) : 0xff;
    }
  }

  /**
   * Guest write of `data` to consecutive registers from `offset`.
   *
   * @param offset register offset from the base
   * @param data bytes written
   */
  write(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const reg = offset + i;
      if (reg < 8) this.#writeReg(reg, data[i]);
    }
  }

  /**
   * Host input (from the main loop): queues bytes in the receive FIFO and
   * raises the interrupt. Takes the lock if one was given.
   *
   * @param bytes bytes typed on the host
   * @returns how many fit; the caller keeps the rest and retries after
   *   `onAcceptInput` (or later)
   */
  enqueueInput(bytes: Uint8Array): number {
    const lock = this.#lock;
    lock?.lock();
    try {
      const s = this.#s;
      const cap = this.#rxCapacity();
      let n = 0;
      while (n < bytes.length && s[S_RX_COUNT] < cap) {
        s[S_RX_FIFO + ((s[S_RX_HEAD] + s[S_RX_COUNT]) % SERIAL_FIFO_SIZE)] = bytes[n++];
        s[S_RX_COUNT]++;
      }
      if (n > 0) s[S_LSR] |= UART_LSR_DR;
      if (n < bytes.length) s[S_INPUT_REFUSED] = 1;
      this.#updateIrq();
      return n;
    } finally {
      lock?.unlock();
    }
  }

  /**
   * Free space in the receive FIFO (1 deep while FIFOs are off). Read it
   * under the lock for an exact answer.
   *
   * @returns bytes enqueueInput would take now
   */
  rxSpace(): number {
    return this.#rxCapacity() - this.#s[S_RX_COUNT];
  }

  /** Whether the line is raised, as last sent to the IrqLine. */
  get irqLevel(): boolean {
    return this.#s[S_IRQ_LEVEL] === 1;
  }

  #rxCapacity(): number {
    return this.#s[S_FCR] & UART_FCR_ENABLE_FIFO ? SERIAL_FIFO_SIZE : 1;
  }

  #readReg(reg: number): number {
    const s = this.#s;
    const dlab = (s[S_LCR] & UART_LCR_DLAB) !== 0;
    switch (reg) {
      case UART_RX:
        return dlab ? s[S_DLL] : this.#popRx();
      case UART_IER:
        return dlab ? s[S_DLM] : s[S_IER];
      case UART_IIR: {
        const iir = this.#iir();
        if (iir === UART_IIR_THRI) {
          s[S_THR_IPENDING] = 0;
          this.#updateIrq();
        }
        return iir | (s[S_FCR] & UART_FCR_ENABLE_FIFO ? UART_IIR_FIFO_ENABLED : 0);
      }
      case UART_LCR:
        return s[S_LCR];
      case UART_MCR:
        return s[S_MCR];
      case UART_LSR: {
        const lsr = s[S_LSR];
        if (lsr & UART_LSR_BRK_ERROR_BITS) {
          s[S_LSR] = lsr & ~UART_LSR_BRK_ERROR_BITS;
          this.#updateIrq();
        }
        return lsr;
      }
      case UART_MSR: {
        const msr = s[S_MSR];
        if (msr & UART_MSR_DELTA) {
          s[S_MSR] = msr & ~UART_MSR_DELTA;
          this.#updateIrq();
        }
        return msr;
      }
      default: // UART_SCR
        return s[S_SCR];
    }
  }

  #writeReg(reg: number, value: number): void {
    const s = this.#s;
    const dlab = (s[S_LCR] & UART_LCR_DLAB) !== 0;
    switch (reg) {
      case UART_RX: // THR
        if (dlab) {
          s[S_DLL] = value;
          return;
        }
        if (s[S_MCR] & UART_MCR_LOOP) this.#loopback(value);
        else this.#sink(value);
        // Sent at once: THR is empty again, which re-arms THRI.
        s[S_THR_IPENDING] = s[S_IER] & UART_IER_THRI ? 1 : 0;
        this.#updateIrq();
        return;
      case UART_IER: {
        if (dlab) {
          s[S_DLM] = value;
          return;
        }
        const ier = value & 0x0f;
        const changed = s[S_IER] ^ ier;
        s[S_IER] = ier;
        // Enabling THRI while THR is empty raises it even if an IIR read
        // had cleared it (Linux's THRE tests, and Windows, depend on this).
        if (changed & UART_IER_THRI) {
          s[S_THR_IPENDING] = ier & UART_IER_THRI && s[S_LSR] & UART_LSR_THRE ? 1 : 0;
        }
        this.#updateIrq();
        return;
      }
      case UART_IIR: // FCR
        this.#writeFcr(value);
        return;
      case UART_LCR:
        s[S_LCR] = value;
        return;
      case UART_MCR:
        this.#writeMcr(value & 0x1f);
        return;
      case UART_SCR:
        s[S_SCR] = value;
        return;
      default: // LSR and MSR are read-only (writes are factory tests)
        return;
    }
  }

  #writeFcr(value: number): void {
    const s = this.#s;
    const old = s[S_FCR];
    const enable = value & UART_FCR_ENABLE_FIFO;
    // Toggling the FIFO enable clears both FIFOs, as does the clear bit.
    if ((old ^ enable) & UART_FCR_ENABLE_FIFO || value & UART_FCR_CLEAR_RCVR) this.#clearRx();
    s[S_FCR] = enable
      ? value & (UART_FCR_ENABLE_FIFO | UART_FCR_DMA_SELECT | UART_FCR_TRIGGER_MASK)
      : 0;
    this.#updateIrq();
  }

  #writeMcr(mcr: number): void {
    const s = this.#s;
    const before = modemStatus(s[S_MCR]);
    s[S_MCR] = mcr;
    const after = modemStatus(mcr);
    const diff = before ^ after;
    let delta = 0;
    if (diff & UART_MSR_CTS) delta |= UART_MSR_DCTS;
    if (diff & UART_MSR_DSR) delta |= UART_MSR_DDSR;
    if (diff & UART_MSR_DCD) delta |= UART_MSR_DDCD;
    if (before & UART_MSR_RI && !(after & UART_MSR_RI)) delta |= UART_MSR_TERI;
    s[S_MSR] = after | ((s[S_MSR] | delta) & UART_MSR_DELTA);
    this.#updateIrq();
  }

  #loopback(value: number): void {
    const s = this.#s;
    if (s[S_RX_COUNT] >= this.#rxCapacity()) {
      s[S_LSR] |= UART_LSR_OE;
      return;
    }
    s[S_RX_FIFO + ((s[S_RX_HEAD] + s[S_RX_COUNT]) % SERIAL_FIFO_SIZE)] = value;
    s[S_RX_COUNT]++;
    s[S_LSR] |= UART_LSR_DR;
  }

  #popRx(): number {
    const s = this.#s;
    if (s[S_RX_COUNT] === 0) return 0;
    const head = s[S_RX_HEAD];
    const value = s[S_RX_FIFO + head];
    s[S_RX_HEAD] = (head + 1) % SERIAL_FIFO_SIZE;
    if (--s[S_RX_COUNT] === 0) {
      s[S_LSR] &= ~UART_LSR_DR;
      if (s[S_INPUT_REFUSED]) {
        s[S_INPUT_REFUSED] = 0;
        this.#onAcceptInput?.();
      }
    }
    this.#updateIrq();
    return value;
  }

  #clearRx(): void {
    const s = this.#s;
    s[S_RX_HEAD] = 0;
    s[S_RX_COUNT] = 0;
    s[S_LSR] &= ~UART_LSR_DR;
  }

  /** The highest-priority pending interrupt, as IIR bits 3:0. */
  #iir(): number {
    const s = this.#s;
    const ier = s[S_IER];
    if (ier & UART_IER_RLSI && s[S_LSR] & UART_LSR_BRK_ERROR_BITS) return UART_IIR_RLSI;
    if (ier & UART_IER_RDI && s[S_RX_COUNT] > 0) {
      // Below the trigger level a real 16550A reports a character timeout
      // after four character times; with no baud clock, report it at once.
      const fcr = s[S_FCR];
      if (fcr & UART_FCR_ENABLE_FIFO && s[S_RX_COUNT] < TRIGGER_LEVELS[fcr >> 6]) {
        return UART_IIR_TIMEOUT;
      }
      return UART_IIR_RDI;
    }
    if (ier & UART_IER_THRI && s[S_THR_IPENDING]) return UART_IIR_THRI;
    if (ier & UART_IER_MSI && s[S_MSR] & UART_MSR_DELTA) return UART_IIR_MSI;
    return UART_IIR_NO_INT;
  }

  /** Sets the line only when the level changes (each set may be an ioctl). */
  #updateIrq(): void {
    const level = this.#iir() !== UART_IIR_NO_INT ? 1 : 0;
    const s = this.#s;
    if (s[S_IRQ_LEVEL] !== level) {
      s[S_IRQ_LEVEL] = level;
      this.#irq.set(level === 1);
    }
  }
}

/**
 * MSR bits 7:4 for an MCR value: in loopback the outputs feed the inputs
 * (DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD); otherwise a connected cable.
 */
function modemStatus(mcr: number): number {
  if (!(mcr & UART_MCR_LOOP)) return MSR_CONNECTED;
  let msr = 0;
  if (mcr & UART_MCR_DTR) msr |= UART_MSR_DSR;
  if (mcr & UART_MCR_RTS) msr |= UART_MSR_CTS;
  if (mcr & UART_MCR_OUT1) msr |= UART_MSR_RI;
  if (mcr & UART_MCR_OUT2) msr |= UART_MSR_DCD;
  return msr;
}
