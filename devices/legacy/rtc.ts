/**
 * The MC146818 CMOS real-time clock at ports 0x70 (index, bit 7 = NMI
 * disable) and 0x71 (data), running on the host's clock (UTC) plus the
 * offset the guest sets, with the CMOS bytes a PC BIOS leaves behind.
 *
 * What Linux does with it: at boot, read_persistent_clock64() ->
 * mach_get_cmos_time() -> mc146818_get_time() reads seconds..year after
 * waiting while register A's UIP bit is set (mc146818_avoid_UIP retries with
 * 1 ms delays), converting from BCD unless register B says binary;
 * drivers/rtc/rtc-cmos.c serves /dev/rtc0 and hwclock, and sets the time
 * with register B's SET bit around the writes; SMP boot writes the shutdown
 * status byte 0x0f. Firmware reads the memory-size bytes.
 *
 * Not modelled: the interrupt (IRQ 8) and alarms firing by themselves; the
 * register C flags are computed when C is read (update-ended when the second
 * changed since the last read, alarm when the alarm matches now, periodic
 * when a period has passed), which is enough for polling.
 *
 * @module
 */
import type { BusDevice } from "../bus.ts";
import { checkRegion, type SharedRegion } from "../shared_region.ts";

// Register indexes (include/linux/mc146818rtc.h names).
const RTC_SECONDS = 0x00;
const RTC_SECONDS_ALARM = 0x01;
const RTC_MINUTES = 0x02;
const RTC_MINUTES_ALARM = 0x03;
const RTC_HOURS = 0x04;
const RTC_HOURS_ALARM = 0x05;
const RTC_DAY_OF_WEEK = 0x06;
const RTC_DAY_OF_MONTH = 0x07;
const RTC_MONTH = 0x08;
const RTC_YEAR = 0x09;
const RTC_REG_A = 0x0a;
const RTC_REG_B = 0x0b;
const RTC_REG_C = 0x0c;
const RTC_REG_D = 0x0d;
const CMOS_EQUIPMENT = 0x14;
const CMOS_BASE_MEM_LO = 0x15;
const CMOS_BASE_MEM_HI = 0x16;
const CMOS_EXT_MEM_LO = 0x17;
const CMOS_EXT_MEM_HI = 0x18;
const CMOS_EXT_MEM2_LO = 0x30;
const CMOS_EXT_MEM2_HI = 0x31;
const CMOS_CENTURY = 0x32;
const CMOS_MEM_ABOVE_16M_LO = 0x34;
const CMOS_MEM_ABOVE_16M_HI = 0x35;
const CMOS_MEM_ABOVE_4G = 0x5b; // three bytes, 64 KiB units
const CMOS_CPU_COUNT = 0x5f; // CPUs - 1, as QEMU sets it

const RTC_UIP = 0x80;
const RTC_DIV_CTL = 0x70;
const RTC_REF_CLCK_32KHZ = 0x20;
const RTC_RATE_SELECT = 0x0f;

const RTC_SET = 0x80;
const RTC_PIE = 0x40;
const RTC_AIE = 0x20;
const RTC_UIE = 0x10;
const RTC_DM_BINARY = 0x04;
const RTC_24H = 0x02;

const RTC_IRQF = 0x80;
const RTC_PF = 0x40;
const RTC_AF = 0x20;
const RTC_UF = 0x10;

const RTC_VRT = 0x80;

/** How long before each second boundary UIP reads as set (ms). */
const UIP_WINDOW_MS = 2;

// Shared state layout.
const S_INDEX = 128; // after the 128 CMOS bytes
const S_NMI_DISABLED = 129;
const F_OFFSET_MS = 17; // Float64 index: byte 136, guest clock minus host clock
const F_LAST_C_SECOND = 18; // byte 144
const F_LAST_C_MS = 19; // byte 152

/** Bytes of shared state the RTC needs. */
export const RTC_STATE_BYTES = 160;

/** The index port; the data port follows it. */
export const RTC_PORT = 0x70;

/** Machine facts written into CMOS memory at power-on. */
export interface CmosConfig {
  /** Guest RAM below 4 GiB, bytes. */
  memoryBelow4g?: number;
  /** Guest RAM above 4 GiB, bytes. */
  memoryAbove4g?: number;
  /** Number of vCPUs. */
  cpus?: number;
}

/** What an Rtc is built from besides its shared state. */
export interface RtcOptions {
  /** Host wall clock in ms since the epoch (tests inject one). */
  now?: () => number;
}

/**
 * The CMOS RTC, inserted at 0x70 with size 2 (offset 0 index, 1 data).
 * Callers hold the big lock.
 *
 * @example
 * ```ts
 * import { Rtc, RTC_STATE_BYTES } from "./rtc.ts";
 * const region = { sab: new SharedArrayBuffer(RTC_STATE_BYTES), offset: 0, length: RTC_STATE_BYTES };
 * Rtc.initState(region, { memoryBelow4g: 512 * 1024 * 1024, cpus: 2 });
 * const rtc = new Rtc(region);
 * const b = new Uint8Array([0x09]); // year
 * rtc.write(0, b);
 * rtc.read(1, b);
 * console.log(b[0].toString(16)); // e.g. "26" (BCD)
 * ```
 */
export class Rtc implements BusDevice {
  #s: Uint8Array;
  #f: Float64Array;
  #region: SharedRegion;
  #now: () => number;
  /** Scratch: sec, min, hour, dow, dom, month, year (full). */
  #t = new Int32Array(7);

  /**
   * Puts a region into the power-on state: registers A-D and CMOS memory.
   *
   * @param region the RTC's shared state
   * @param config memory sizes and CPU count for the CMOS bytes
   */
  static initState(region: SharedRegion, config: CmosConfig = {}): void {
    checkRegion(region, RTC_STATE_BYTES);
    const s = new Uint8Array(region.sab, region.offset, RTC_STATE_BYTES);
    const f = new Float64Array(region.sab, region.offset, RTC_STATE_BYTES / 8);
    s.fill(0);
    s[RTC_REG_A] = RTC_REF_CLCK_32KHZ | 0x06; // 32.768 kHz, 1024 Hz periodic rate
    s[RTC_REG_B] = RTC_24H;
    s[RTC_REG_D] = RTC_VRT;
    s[CMOS_EQUIPMENT] = 0x02; // maths coprocessor present, VGA
    s[CMOS_BASE_MEM_LO] = 640 & 0xff;
    s[CMOS_BASE_MEM_HI] = 640 >> 8;
    const below = config.memoryBelow4g ?? 0;
    const above = config.memoryAbove4g ?? 0;
    const extKb = Math.min(0xffff, Math.max(0, Math.floor((below - 0x100000) / 1024)));
    s[CMOS_EXT_MEM_LO] = s[CMOS_EXT_MEM2_LO] = extKb & 0xff;
    s[CMOS_EXT_MEM_HI] = s[CMOS_EXT_MEM2_HI] = extKb >> 8;
    const above16m = Math.min(0xffff, Math.max(0, Math.floor((below - 0x1000000) / 0x10000)));
    s[CMOS_MEM_ABOVE_16M_LO] = above16m & 0xff;
    s[CMOS_MEM_ABOVE_16M_HI] = above16m >> 8;
    const above4g = Math.min(0xffffff, Math.max(0, Math.floor(above / 0x10000)));
    s[CMOS_MEM_ABOVE_4G] = above4g & 0xff;
    s[CMOS_MEM_ABOVE_4G + 1] = (above4g >> 8) & 0xff;
    s[CMOS_MEM_ABOVE_4G + 2] = above4g >> 16;
    s[CMOS_CPU_COUNT] = Math.max(0, Math.min(255, (config.cpus ?? 1) - 1));
    f[F_OFFSET_MS] = 0;
    f[F_LAST_C_SECOND] = -1;
    f[F_LAST_C_MS] = 0;
  }

  /**
   * Attaches to the shared state; one instance per thread.
   *
   * @param region shared state, initialised by {@link Rtc.initState}
   * @param options the host clock
   */
  constructor(region: SharedRegion, options: RtcOptions = {}) {
    checkRegion(region, RTC_STATE_BYTES);
    this.#region = { sab: region.sab, offset: region.offset, length: region.length };
    this.#s = new Uint8Array(region.sab, region.offset, RTC_STATE_BYTES);
    this.#f = new Float64Array(region.sab, region.offset, RTC_STATE_BYTES / 8);
    this.#now = options.now ?? Date.now;
  }

  /** The plain state other threads build their Rtc from. */
  get state(): SharedRegion {
    return this.#region;
  }

  /** Whether the guest has set the NMI-disable bit in the index. */
  get nmiDisabled(): boolean {
    return this.#s[S_NMI_DISABLED] === 1;
  }

  /**
   * Port read: offset 0 is the write-only index (reads 0xff), 1 the data.
   *
   * @param offset 0 or 1
   * @param data filled with the value
   */
  read(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      data[i] = offset + i === 1 ? this.readRegister(this.#s[S_INDEX]) : 0xff;
    }
  }

  /**
   * Port write: offset 0 selects a register (bit 7 masks NMIs), 1 writes it.
   *
   * @param offset 0 or 1
   * @param data the value
   */
  write(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      const port = offset + i;
      if (port === 0) {
        this.#s[S_INDEX] = data[i] & 0x7f;
        this.#s[S_NMI_DISABLED] = data[i] >> 7;
      } else if (port === 1) {
        this.writeRegister(this.#s[S_INDEX], data[i]);
      }
    }
  }

  /**
   * Reads CMOS register `index` (0-127).
   *
   * @param index register number
   * @returns its value
   */
  readRegister(index: number): number {
    const s = this.#s;
    index &= 0x7f;
    const frozen = (s[RTC_REG_B] & RTC_SET) !== 0;
    switch (index) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case CMOS_CENTURY:
        if (frozen) return s[index];
        this.#fields(this.#guestMs());
        return this.#encode(index);
      case RTC_REG_A: {
        let a = s[RTC_REG_A];
        if (!frozen && (a & RTC_DIV_CTL) === RTC_REF_CLCK_32KHZ) {
          const ms = this.#guestMs();
          if (ms - Math.floor(ms / 1000) * 1000 >= 1000 - UIP_WINDOW_MS) a |= RTC_UIP;
        }
        return a;
      }
      case RTC_REG_C:
        return this.#readC();
      default:
        return s[index];
    }
  }

  /**
   * Writes CMOS register `index` (0-127).
   *
   * @param index register number
   * @param value the byte
   */
  writeRegister(index: number, value: number): void {
    const s = this.#s;
    index &= 0x7f;
    switch (index) {
      case RTC_SECONDS:
      case RTC_MINUTES:
      case RTC_HOURS:
      case RTC_DAY_OF_WEEK:
      case RTC_DAY_OF_MONTH:
      case RTC_MONTH:
      case RTC_YEAR:
      case CMOS_CENTURY:
        if (s[RTC_REG_B] & RTC_SET) {
          s[index] = value;
        } else {
          // A running clock takes the new field and keeps counting from it.
          this.#freeze();
          s[index] = value;
          this.#commit();
        }
        return;
      case RTC_REG_A:
        s[RTC_REG_A] = value & ~RTC_UIP;
        return;
      case RTC_REG_B: {
        const old = s[RTC_REG_B];
        if (value & RTC_SET && !(old & RTC_SET)) this.#freeze();
        // SET stops update-ended interrupts.
        s[RTC_REG_B] = value & RTC_SET ? value & ~RTC_UIE : value;
        if (!(value & RTC_SET) && old & RTC_SET) this.#commit();
        return;
      }
      case RTC_REG_C:
      case RTC_REG_D:
        return; // read-only
      default:
        s[index] = value;
    }
  }

  #guestMs(): number {
    return this.#now() + this.#f[F_OFFSET_MS];
  }

  /** Copies the running time into the time registers (SET mode). */
  #freeze(): void {
    const s = this.#s;
    this.#fields(this.#guestMs());
    for (const r of TIME_REGS) s[r] = this.#encode(r);
  }

  /** Restarts the clock from the time registers. */
  #commit(): void {
    const s = this.#s;
    const sec = this.#decode(s[RTC_SECONDS]);
    const min = this.#decode(s[RTC_MINUTES]);
    let hour: number;
    const rawHour = s[RTC_HOURS];
    if (s[RTC_REG_B] & RTC_24H) hour = this.#decode(rawHour);
    else hour = (this.#decode(rawHour & 0x7f) % 12) + (rawHour & 0x80 ? 12 : 0);
    const dom = this.#decode(s[RTC_DAY_OF_MONTH]);
    const month = this.#decode(s[RTC_MONTH]);
    const century = this.#decode(s[CMOS_CENTURY]);
    const year = (century >= 19 && century <= 99 ? century : 20) * 100 + this.#decode(s[RTC_YEAR]);
    // Out-of-range fields are the guest's problem; the arithmetic wraps them.
    const days = daysFromCivil(year, Math.min(Math.max(month, 1), 12), dom);
    const ms = ((days * 24 + hour) * 60 + min) * 60000 + sec * 1000;
    const now = this.#now();
    this.#f[F_OFFSET_MS] = Number.isFinite(ms) ? ms - now : 0;
  }

  #readC(): number {
    const s = this.#s;
    const f = this.#f;
    const b = s[RTC_REG_B];
    const ms = this.#guestMs();
    const second = Math.floor(ms / 1000);
    let c = 0;
    if (f[F_LAST_C_SECOND] >= 0 && second !== f[F_LAST_C_SECOND]) c |= RTC_UF;
    f[F_LAST_C_SECOND] = second;
    this.#fields(ms);
    if (
      alarmMatches(s[RTC_SECONDS_ALARM], this.#encode(RTC_SECONDS)) &&
      alarmMatches(s[RTC_MINUTES_ALARM], this.#encode(RTC_MINUTES)) &&
      alarmMatches(s[RTC_HOURS_ALARM], this.#encode(RTC_HOURS))
    ) c |= RTC_AF;
    const rate = s[RTC_REG_A] & RTC_RATE_SELECT;
    if (rate !== 0) {
      // Rates 1 and 2 repeat 8 and 9 (256 Hz, 128 Hz) on a 32 kHz base.
      const periodMs = 1000 / (32768 >> ((rate <= 2 ? rate + 7 : rate) - 1));
      if (ms - f[F_LAST_C_MS] >= periodMs) c |= RTC_PF;
    }
    f[F_LAST_C_MS] = ms;
    if ((c & RTC_UF && b & RTC_UIE) || (c & RTC_AF && b & RTC_AIE) || (c & RTC_PF && b & RTC_PIE)) {
      c |= RTC_IRQF;
    }
    return c;
  }

  /** Splits a guest time into calendar fields (UTC). */
  #fields(ms: number): void {
    const t = this.#t;
    const totalSec = Math.floor(ms / 1000);
    const days = Math.floor(totalSec / 86400);
    let rem = totalSec - days * 86400;
    t[2] = Math.floor(rem / 3600);
    rem -= t[2] * 3600;
    t[1] = Math.floor(rem / 60);
    t[0] = rem - t[1] * 60;
    t[3] = ((days % 7) + 11) % 7 + 1; // 1970-01-01 was a Thursday; Sunday is 1
    civilFromDays(days, t);
  }

  /** A time register's value in the current format, from #t. */
  #encode(index: number): number {
    const t = this.#t;
    switch (index) {
      case RTC_SECONDS:
        return this.#toReg(t[0]);
      case RTC_MINUTES:
        return this.#toReg(t[1]);
      case RTC_HOURS: {
        if (this.#s[RTC_REG_B] & RTC_24H) return this.#toReg(t[2]);
        const h12 = t[2] % 12 === 0 ? 12 : t[2] % 12;
        return this.#toReg(h12) | (t[2] >= 12 ? 0x80 : 0);
      }
      case RTC_DAY_OF_WEEK:
        return this.#toReg(t[3]);
      case RTC_DAY_OF_MONTH:
        return this.#toReg(t[4]);
      case RTC_MONTH:
        return this.#toReg(t[5]);
      case RTC_YEAR:
        return this.#toReg(((t[6] % 100) + 100) % 100);
      default: // CMOS_CENTURY
        return this.#toReg(Math.floor(t[6] / 100) & 0xff);
    }
  }

  #toReg(v: number): number {
    return this.#s[RTC_REG_B] & RTC_DM_BINARY ? v : ((v / 10) | 0) * 16 + (v % 10);
  }

  #decode(v: number): number {
    return this.#s[RTC_REG_B] & RTC_DM_BINARY ? v : (v >> 4) * 10 + (v & 0x0f);
  }
}

const TIME_REGS = [
  RTC_SECONDS,
  RTC_MINUTES,
  RTC_HOURS,
  RTC_DAY_OF_WEEK,
  RTC_DAY_OF_MONTH,
  RTC_MONTH,
  RTC_YEAR,
  CMOS_CENTURY,
];

/** An alarm byte of 0xc0-0xff matches any value ("don't care"). */
function alarmMatches(alarm: number, now: number): boolean {
  return alarm >= 0xc0 || alarm === now;
}

/** Days since 1970-01-01 of a proleptic Gregorian date. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Writes day of month, month and year for a day count into t[4..6]. */
function civilFromDays(days: number, t: Int32Array): void {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const month = mp < 10 ? mp + 3 : mp - 9;
  t[4] = doy - Math.floor((153 * mp + 2) / 5) + 1;
  t[5] = month;
  t[6] = yoe + era * 400 + (month <= 2 ? 1 : 0);
}
