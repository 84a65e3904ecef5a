/**
 * The small ports a PC answers besides its named chips: the POST/delay port,
 * System Control Port A, the PIIX reset control register, the ACPI PM1a
 * event/control blocks with the PM timer, and QEMU's isa-debug-exit.
 *
 * All keep their registers in one shared region (see {@link PC_PORTS_STATE_BYTES});
 * callers hold the big lock.
 *
 * @module
 */
import type { BusDevice } from "../bus.ts";
import type { IrqLine } from "../irq.ts";
import { checkRegion, type SharedRegion } from "../shared_region.ts";
import type { SystemEvents } from "./system_events.ts";

// Shared state layout.
const S_POST = 0;
const S_PORT92 = 1;
const S_CF9 = 2;
const S_SCI_LEVEL = 3;
const S_PM1 = 4; // PM1_STS (2), PM1_EN (2), PM1_CNT (2): the 0x600 block's first 6 bytes
const F_PM_EPOCH = 2; // Float64 index: byte 16, the PM timer's zero (ms)
const F_PM_LAST = 3; // byte 24: the latest time the PM timer showed (ms since the zero)

/** Bytes of shared state the PC ports need. */
export const PC_PORTS_STATE_BYTES = 32;

/** POST code / I/O delay port. */
export const POST_PORT = 0x80;
/** System Control Port A (fast A20 and reset). */
export const PORT_92 = 0x92;
/** PIIX/ICH reset control register. */
export const RESET_CONTROL_PORT = 0xcf9;
/** ACPI PM1a event block; PM1a control is at +4, the PM timer at +8. */
export const ACPI_PM_BASE = 0x600;
/** Bytes claimed at ACPI_PM_BASE: PM1a_EVT (4), PM1a_CNT (2), pad (2), PM_TMR (4). */
export const ACPI_PM_SIZE = 12;
/** QEMU's isa-debug-exit, where test guests put it (`iobase=0xf4`). */
export const DEBUG_EXIT_PORT = 0xf4;

const ACPI_PM1_CNT = 4;
const ACPI_PM_TMR = 8;
const ACPI_BITMASK_PWRBTN = 0x0100;
const ACPI_BITMASK_SCI_ENABLE = 0x0001;
const ACPI_BITMASK_SLEEP_ENABLE = 0x2000;
const ACPI_SLP_TYP_SHIFT = 10;
/** PM timer frequency: 3.579545 MHz, in ticks per ms. */
const PM_TIMER_TICKS_PER_MS = 3579.545;

/** Monotonic ms shared by every thread (performance.now() is per isolate). */
function absoluteMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Puts the PC ports' region into the power-on state.
 *
 * @param region the shared region
 * @param now the clock the PM timer counts from (ms), default the host's
 * @example
 * ```ts
 * import { initPcPortsState, PC_PORTS_STATE_BYTES } from "./pc_ports.ts";
 * const region = { sab: new SharedArrayBuffer(32), offset: 0, length: PC_PORTS_STATE_BYTES };
 * initPcPortsState(region);
 * ```
 */
export function initPcPortsState(region: SharedRegion, now: () => number = absoluteMs): void {
  checkRegion(region, PC_PORTS_STATE_BYTES);
  new Uint8Array(region.sab, region.offset, PC_PORTS_STATE_BYTES).fill(0);
  new Float64Array(region.sab, region.offset, 4)[F_PM_EPOCH] = now();
  new Uint8Array(region.sab, region.offset)[S_PORT92] = 0x02; // A20 on
}

/**
 * Port 0x80: writes are POST codes (firmware) or I/O delays (Linux's
 * native_io_delay, outb to 0x80, used by the real-mode setup code and by
 * early boot before paravirt replaces io_delay with a no-op on KVM); they
 * are only remembered. Reads return the last code.
 *
 * @example
 * ```ts
 * import { initPcPortsState, PostPort, PC_PORTS_STATE_BYTES } from "./pc_ports.ts";
 * const region = { sab: new SharedArrayBuffer(32), offset: 0, length: PC_PORTS_STATE_BYTES };
 * initPcPortsState(region);
 * new PostPort(region).write(0, new Uint8Array([0x42]));
 * ```
 */
export class PostPort implements BusDevice {
  #s: Uint8Array;

  /**
   * Attaches to the shared state; one instance per thread.
   *
   * @param region the PC ports' shared region
   */
  constructor(region: SharedRegion) {
    checkRegion(region, PC_PORTS_STATE_BYTES);
    this.#s = new Uint8Array(region.sab, region.offset, PC_PORTS_STATE_BYTES);
  }

  /** The last POST code written. */
  get lastCode(): number {
    return this.#s[S_POST];
  }

  /**
   * Handles a guest read.
   *
   * @param _offset always 0
   * @param data filled with the last code
   */
  read(_offset: number, data: Uint8Array): void {
    data.fill(this.#s[S_POST]);
  }

  /**
   * Handles a guest write.
   *
   * @param _offset always 0
   * @param data the code (first byte kept)
   */
  write(_offset: number, data: Uint8Array): void {
    if (data.length > 0) this.#s[S_POST] = data[0];
  }
}

/**
 * A one-byte register in the PC ports' shared state whose write can reset
 * the machine: ports 0x92 and 0xcf9 differ only in the bits they keep and
 * the write that resets. Reads return the kept bits (0xff beyond byte 0).
 */
class ResetRegister implements BusDevice {
  #s: Uint8Array;
  #events: SystemEvents;
  #index: number;
  #keep: number;
  #resets: (old: number, value: number) => boolean;

  constructor(
    region: SharedRegion,
    events: SystemEvents,
    spec: { index: number; keep: number; resets: (old: number, value: number) => boolean },
  ) {
    checkRegion(region, PC_PORTS_STATE_BYTES);
    this.#s = new Uint8Array(region.sab, region.offset, PC_PORTS_STATE_BYTES);
    this.#events = events;
    this.#index = spec.index;
    this.#keep = spec.keep;
    this.#resets = spec.resets;
  }

  /**
   * Handles a guest read.
   *
   * @param _offset always 0
   * @param data filled with the register's kept bits
   */
  read(_offset: number, data: Uint8Array): void {
    data.fill(0xff);
    if (data.length > 0) data[0] = this.#s[this.#index];
  }

  /**
   * Handles a guest write.
   *
   * @param _offset always 0
   * @param data the new value (first byte)
   */
  write(_offset: number, data: Uint8Array): void {
    if (data.length === 0) return;
    const old = this.#s[this.#index];
    this.#s[this.#index] = data[0] & this.#keep;
    if (this.#resets(old, data[0])) this.#events.reset();
  }
}

function port92Resets(old: number, value: number): boolean {
  return (value & 1) !== 0 && (old & 1) === 0;
}

function cf9Resets(_old: number, value: number): boolean {
  return (value & 0x04) !== 0;
}

/**
 * Port 0x92, System Control Port A: bit 1 gates A20 (Linux's
 * arch/x86/boot/a20.c enable_a20_fast, on the real-mode boot path), bit 0
 * going from 0 to 1 resets the machine (firmware and old bootloaders; Linux's
 * reboot code does not use it).
 *
 * @example
 * ```ts
 * import { initPcPortsState, Port92, PC_PORTS_STATE_BYTES } from "./pc_ports.ts";
 * import { RecordingSystemEvents } from "./system_events.ts";
 * const region = { sab: new SharedArrayBuffer(32), offset: 0, length: PC_PORTS_STATE_BYTES };
 * initPcPortsState(region);
 * const events = new RecordingSystemEvents();
 * new Port92(region, { events }).write(0, new Uint8Array([0x03]));
 * console.log(events.events); // ["reset"]
 * ```
 */
export class Port92 extends ResetRegister {
  /**
   * Attaches to the shared state; one instance per thread.
   *
   * @param region the PC ports' shared region
   * @param options where the reset goes
   */
  constructor(region: SharedRegion, options: { events: SystemEvents }) {
    // Bits 0 (reset) and 1 (A20) stick; a rising bit 0 resets.
    super(region, options.events, { index: S_PORT92, keep: 0x03, resets: port92Resets });
  }
}

/**
 * Port 0xcf9, the reset control register of Intel's PCI-ISA bridges: a
 * write with RST_CPU (bit 2) set resets (bit 1 SYS_RST and bit 3 FULL_RST
 * choose how hard; all are a reset here). Linux writes 0x02 then 0x06 (warm)
 * or 0x0e (cold) for reboot=pci (BOOT_CF9_FORCE), for BOOT_CF9_SAFE, and
 * through the FADT reset register when ACPI names this port.
 *
 * 0xcf9 lies inside the PCI configuration address dword (0xcf8-0xcfb): the
 * PCI host bridge should claim 0xcf8 with size 1 (the bus dispatches on the
 * first port, so its dword accesses still arrive) and leave 0xcf9 here.
 *
 * @example
 * ```ts
 * import { initPcPortsState, ResetControl, PC_PORTS_STATE_BYTES } from "./pc_ports.ts";
 * import { RecordingSystemEvents } from "./system_events.ts";
 * const region = { sab: new SharedArrayBuffer(32), offset: 0, length: PC_PORTS_STATE_BYTES };
 * initPcPortsState(region);
 * const events = new RecordingSystemEvents();
 * new ResetControl(region, { events }).write(0, new Uint8Array([0x06]));
 * ```
 */
export class ResetControl extends ResetRegister {
  /**
   * Attaches to the shared state; one instance per thread.
   *
   * @param region the PC ports' shared region
   * @param options where the reset goes
   */
  constructor(region: SharedRegion, options: { events: SystemEvents }) {
    // SYS_RST and FULL_RST stick; RST_CPU (bit 2) resets.
    super(region, options.events, { index: S_CF9, keep: 0x0a, resets: cf9Resets });
  }
}

/** What AcpiPm is built from besides its shared state. */
export interface AcpiPmOptions {
  /** Receives the S5 power-off. */
  events: SystemEvents;
  /** The SCI (GSI 9), raised for the power button while enabled. */
  sci?: IrqLine;
  /**
   * SLP_TYP value meaning S5, as the DSDT's \_S5 package gives it (5 in
   * Cloud Hypervisor's and Firecracker's tables; QEMU's use 0).
   */
  s5SleepType?: number;
  /** The PM timer's clock in ms (tests inject one). */
  now?: () => number;
}

/**
 * ACPI fixed hardware at 0x600: PM1a_EVT_BLK (PM1_STS, PM1_EN), PM1a_CNT_BLK
 * at 0x604 and PM_TMR_BLK at 0x608, as the FADT must describe them.
 * Linux uses them only with ACPI tables: acpi_enter_sleep_state(S5) from
 * acpi_power_off() writes SLP_TYP|SLP_EN to PM1_CNT (-> shutdown); SCI_EN
 * reading as set tells it ACPI mode is already on (no SMI_CMD handshake);
 * the power-button event (PWRBTN_STS/EN + SCI) asks it to shut down
 * cleanly; the acpi_pm clocksource reads the 24-bit PM timer.
 *
 * @example
 * ```ts
 * import { AcpiPm, initPcPortsState, PC_PORTS_STATE_BYTES } from "./pc_ports.ts";
 * import { RecordingSystemEvents } from "./system_events.ts";
 * const region = { sab: new SharedArrayBuffer(32), offset: 0, length: PC_PORTS_STATE_BYTES };
 * initPcPortsState(region);
 * const events = new RecordingSystemEvents();
 * const pm = new AcpiPm(region, { events });
 * pm.write(4, new Uint8Array([0x00, 0x34])); // SLP_TYP=5, SLP_EN
 * console.log(events.events); // ["shutdown"]
 * ```
 */
export class AcpiPm implements BusDevice {
  #s: Uint8Array;
  #f: Float64Array;
  #events: SystemEvents;
  #sci: IrqLine | undefined;
  #s5: number;
  #now: () => number;

  /**
   * Attaches to the shared state; one instance per thread.
   *
   * @param region the PC ports' shared region
   * @param options power-off sink, SCI, S5 value
   */
  constructor(region: SharedRegion, options: AcpiPmOptions) {
    checkRegion(region, PC_PORTS_STATE_BYTES);
    this.#s = new Uint8Array(region.sab, region.offset, PC_PORTS_STATE_BYTES);
    this.#f = new Float64Array(region.sab, region.offset, 4);
    this.#events = options.events;
    this.#sci = options.sci;
    this.#s5 = (options.s5SleepType ?? 5) & 7;
    this.#now = options.now ?? absoluteMs;
  }

  /**
   * The host's power button: sets PWRBTN_STS and raises the SCI if the
   * guest enabled it.
   *
   * @returns whether the guest had enabled the event (else it is ignored)
   */
  pressPowerButton(): boolean {
    const s = this.#s;
    s[S_PM1 + 1] |= ACPI_BITMASK_PWRBTN >> 8;
    this.#updateSci();
    return (s[S_PM1 + 3] & (ACPI_BITMASK_PWRBTN >> 8)) !== 0;
  }

  /**
   * Handles a guest read.
   *
   * @param offset from 0x600
   * @param data filled with register bytes
   */
  read(offset: number, data: Uint8Array): void {
    const s = this.#s;
    let timer = -1;
    for (let i = 0; i < data.length; i++) {
      const off = offset + i;
      if (off < 6) {
        data[i] = s[S_PM1 + off] | (off === ACPI_PM1_CNT ? ACPI_BITMASK_SCI_ENABLE : 0);
      } else if (off >= ACPI_PM_TMR && off < ACPI_PM_TMR + 4) {
        if (timer < 0) {
          // Threads' clocks may disagree by a little (each isolate has its
          // own timeOrigin): never let the count go backwards.
          const f = this.#f;
          const ms = Math.max(this.#now() - f[F_PM_EPOCH], f[F_PM_LAST]);
          f[F_PM_LAST] = ms;
          timer = Math.floor(ms * PM_TIMER_TICKS_PER_MS) & 0xffffff;
        }
        data[i] = (timer >>> ((off - ACPI_PM_TMR) * 8)) & 0xff;
      } else {
        data[i] = 0xff;
      }
    }
  }

  /**
   * Handles a guest write.
   *
   * @param offset from 0x600
   * @param data bytes written
   */
  write(offset: number, data: Uint8Array): void {
    const s = this.#s;
    let cnt = false;
    for (let i = 0; i < data.length; i++) {
      const off = offset + i;
      if (off < 2) s[S_PM1 + off] &= ~data[i]; // PM1_STS: write 1 to clear
      else if (off < 4) s[S_PM1 + off] = data[i];
      else if (off < 6) {
        s[S_PM1 + off] = data[i];
        cnt = true;
      }
    }
    if (cnt) {
      const value = s[S_PM1 + ACPI_PM1_CNT] | (s[S_PM1 + ACPI_PM1_CNT + 1] << 8);
      if (value & ACPI_BITMASK_SLEEP_ENABLE) {
        s[S_PM1 + ACPI_PM1_CNT + 1] &= ~(ACPI_BITMASK_SLEEP_ENABLE >> 8); // reads as 0
        if (((value >> ACPI_SLP_TYP_SHIFT) & 7) === this.#s5) this.#events.shutdown();
      }
    }
    this.#updateSci();
  }

  #updateSci(): void {
    const s = this.#s;
    const level = s[S_PM1 + 1] & s[S_PM1 + 3] & (ACPI_BITMASK_PWRBTN >> 8) ? 1 : 0;
    if (s[S_SCI_LEVEL] !== level) {
      s[S_SCI_LEVEL] = level;
      this.#sci?.set(level === 1);
    }
  }
}

/**
 * QEMU's isa-debug-exit: a write of v ends the VM with exit status
 * `(v << 1) | 1` (so a guest cannot fake a clean 0). No Linux code uses it;
 * the project's test guests write their verdict here. Reads return 0.
 *
 * @example
 * ```ts
 * import { DebugExit } from "./pc_ports.ts";
 * import { RecordingSystemEvents } from "./system_events.ts";
 * const events = new RecordingSystemEvents();
 * new DebugExit({ events }).write(0, new Uint8Array([0x10]));
 * console.log(events.events); // ["exit:33"]
 * ```
 */
export class DebugExit implements BusDevice {
  #events: SystemEvents;

  /**
   * Creates the device.
   *
   * @param options where the exit goes
   */
  constructor(options: { events: SystemEvents }) {
    this.#events = options.events;
  }

  /**
   * Handles a guest read.
   *
   * @param _offset ignored
   * @param data filled with 0
   */
  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  /**
   * Handles a guest write.
   *
   * @param _offset ignored
   * @param data the value, little-endian, 1-4 bytes
   */
  write(_offset: number, data: Uint8Array): void {
    let v = 0;
    for (let i = 0; i < data.length && i < 4; i++) v |= data[i] << (8 * i);
    this.#events.exit(((v << 1) | 1) & 0xff);
  }
}
