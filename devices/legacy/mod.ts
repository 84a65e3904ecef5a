/**
 * The PC's legacy devices as one set: which ports each claims, the shared
 * state they live in, and one call that builds them all in a thread (every
 * vCPU Worker and the main loop build the same set over the same state).
 *
 * Ports claimed (PIO): COM1 0x3f8+8 (GSI 4), i8042 0x60+1 and 0x64+1
 * (keyboard GSI 1, PS/2 mouse GSI 12), CMOS RTC 0x70+2, POST 0x80+1, port A 0x92+1, debug-exit
 * 0xf4+1, ACPI PM 0x600+12 (SCI GSI 9), reset control 0xcf9+1 (optional).
 * Not claimed: 0x40-0x43 and 0x61, which KVM's in-kernel PIT serves
 * (KVM_CREATE_PIT2; 0x61 only with the KVM_PIT_SPEAKER_DUMMY flag, else it
 * exits to us unclaimed and reads all-ones); 0x20/0xa0 PICs and 0x4d0 ELCR,
 * served by KVM_CREATE_IRQCHIP; COM2-4, left unclaimed so Linux's 8250 probe
 * fails its IER test on the all-ones reads.
 *
 * @module
 */
import type { Bus, BusDevice } from "../bus.ts";
import type { IrqLine } from "../irq.ts";
import { BigLock, type BigLockState } from "../big_lock.ts";
import { SharedLayout, type SharedRegion } from "../shared_region.ts";
import { I8042, I8042_COMMAND_PORT, I8042_DATA_PORT, I8042_STATE_BYTES } from "./i8042.ts";
import {
  ACPI_PM_BASE,
  ACPI_PM_SIZE,
  AcpiPm,
  DEBUG_EXIT_PORT,
  DebugExit,
  initPcPortsState,
  PC_PORTS_STATE_BYTES,
  Port92,
  PORT_92,
  POST_PORT,
  PostPort,
  RESET_CONTROL_PORT,
  ResetControl,
} from "./pc_ports.ts";
import { type CmosConfig, Rtc, RTC_PORT, RTC_STATE_BYTES } from "./rtc.ts";
import { Serial, SERIAL_STATE_BYTES } from "./serial.ts";
import type { SystemEvents } from "./system_events.ts";

export * from "./i8042.ts";
export * from "./pc_ports.ts";
export * from "./ps2_mouse.ts";
export * from "./rtc.ts";
export * from "./serial.ts";
export * from "./system_events.ts";

/** COM1's base port. */
export const COM1_PORT = 0x3f8;

/** The GSIs (ISA IRQs) the legacy devices use. */
export const LEGACY_GSI = {
  /** i8042 keyboard. */
  KBD: 1,
  /** COM1. */
  COM1: 4,
  /** RTC (not raised: see rtc.ts). */
  RTC: 8,
  /** ACPI SCI. */
  SCI: 9,
  /** i8042 mouse. */
  AUX: 12,
} as const;

/** Everything the legacy devices share, as plain postMessage-able data. */
export interface LegacyState {
  /** The big lock's words. */
  lock: BigLockState;
  /** COM1's registers. */
  serial: SharedRegion;
  /** The i8042's registers. */
  i8042: SharedRegion;
  /** CMOS RTC and memory. */
  rtc: SharedRegion;
  /** POST, port A, reset control, ACPI PM. */
  ports: SharedRegion;
}

/** Machine facts and an optional big lock the VM already has. */
export interface LegacyConfig extends CmosConfig {
  /** The VM's big lock; without one, a new lock is placed in the state. */
  lock?: BigLockState;
}

/**
 * Allocates and initialises the legacy devices' shared state (once, on the
 * main thread, before any Worker starts).
 *
 * @param config memory sizes and CPU count for CMOS, and the VM's big lock
 * @returns the state to post to each vCPU Worker
 * @example
 * ```ts
 * import { createLegacyState } from "./mod.ts";
 * const state = createLegacyState({ memoryBelow4g: 256 << 20, cpus: 1 });
 * // worker.postMessage({ legacy: state });
 * ```
 */
export function createLegacyState(config: LegacyConfig = {}): LegacyState {
  const layout = new SharedLayout();
  const lockAt = config.lock ? -1 : layout.reserve(BigLock.BYTES, 8);
  const serialAt = layout.reserve(SERIAL_STATE_BYTES);
  const i8042At = layout.reserve(I8042_STATE_BYTES);
  const rtcAt = layout.reserve(RTC_STATE_BYTES);
  const portsAt = layout.reserve(PC_PORTS_STATE_BYTES);
  const sab = layout.allocate();
  const state: LegacyState = {
    lock: config.lock ?? { sab, offset: lockAt },
    serial: { sab, offset: serialAt, length: SERIAL_STATE_BYTES },
    i8042: { sab, offset: i8042At, length: I8042_STATE_BYTES },
    rtc: { sab, offset: rtcAt, length: RTC_STATE_BYTES },
    ports: { sab, offset: portsAt, length: PC_PORTS_STATE_BYTES },
  };
  Serial.initState(state.serial);
  I8042.initState(state.i8042);
  Rtc.initState(state.rtc, config);
  initPcPortsState(state.ports);
  return state;
}

/** One bus range to insert. */
export interface LegacyDeviceEntry {
  /** Short name for logs. */
  name: string;
  /** The device, with offsets relative to base. */
  device: BusDevice;
  /** First port. */
  base: number;
  /** Ports claimed. */
  size: number;
}

/** What the devices need from the thread that builds them. */
export interface LegacyDeviceOptions {
  /** The interrupt line for a GSI in this thread (called once per line). */
  irq: (gsi: number) => IrqLine;
  /** COM1's output, one byte per THR write (batch it per exit). */
  sink: (byte: number) => void;
  /** Where reset, power-off and debug-exit go. */
  events: SystemEvents;
  /** Called when COM1 has drained input it earlier refused. */
  onAcceptInput?: () => void;
  /** Claim 0xcf9 (default true); false if the PCI host bridge owns 0xcf8-0xcfb. */
  resetControl?: boolean;
  /** \_S5 SLP_TYP in the DSDT (default 5). */
  s5SleepType?: number;
  /** The RTC's host clock in ms since the epoch. */
  now?: () => number;
}

/** The built set: bus entries plus the devices the VMM talks to directly. */
export interface LegacyDevices {
  /** Ranges to insert on the PIO bus. */
  entries: LegacyDeviceEntry[];
  /** This thread's handle on the big lock. */
  lock: BigLock;
  /** COM1 (enqueueInput from the main loop). */
  serial: Serial;
  /** The PS/2 controller. */
  i8042: I8042;
  /** The CMOS RTC. */
  rtc: Rtc;
  /** ACPI PM (pressPowerButton from the main loop). */
  acpiPm: AcpiPm;
}

/**
 * Builds this thread's instances of every legacy device over the shared
 * state.
 *
 * @param state from {@link createLegacyState}, posted to this thread
 * @param options interrupt lines, console sink, system events
 * @returns devices and the PIO ranges to insert
 * @example
 * ```ts
 * import { Bus } from "../bus.ts";
 * import { FakeIrqLine } from "../irq.ts";
 * import { createLegacyDevices, createLegacyState, insertLegacyDevices } from "./mod.ts";
 * import { RecordingSystemEvents } from "./system_events.ts";
 * const state = createLegacyState();
 * const legacy = createLegacyDevices(state, {
 *   irq: () => new FakeIrqLine(),
 *   sink: (b) => console.log(b),
 *   events: new RecordingSystemEvents(),
 * });
 * const pio = new Bus();
 * insertLegacyDevices(pio, legacy);
 * ```
 */
export function createLegacyDevices(
  state: LegacyState,
  options: LegacyDeviceOptions,
): LegacyDevices {
  const lock = new BigLock(state.lock);
  const { events } = options;
  const serial = new Serial(state.serial, {
    irq: options.irq(LEGACY_GSI.COM1),
    sink: options.sink,
    lock,
    onAcceptInput: options.onAcceptInput,
  });
  const i8042 = new I8042(state.i8042, {
    kbdIrq: options.irq(LEGACY_GSI.KBD),
    auxIrq: options.irq(LEGACY_GSI.AUX),
    events,
  });
  const rtc = new Rtc(state.rtc, { now: options.now });
  const acpiPm = new AcpiPm(state.ports, {
    events,
    sci: options.irq(LEGACY_GSI.SCI),
    s5SleepType: options.s5SleepType,
  });
  const entries: LegacyDeviceEntry[] = [
    { name: "i8042-data", device: i8042.dataPort, base: I8042_DATA_PORT, size: 1 },
    { name: "i8042-cmd", device: i8042.commandPort, base: I8042_COMMAND_PORT, size: 1 },
    { name: "rtc", device: rtc, base: RTC_PORT, size: 2 },
    { name: "post", device: new PostPort(state.ports), base: POST_PORT, size: 1 },
    { name: "port92", device: new Port92(state.ports, { events }), base: PORT_92, size: 1 },
    { name: "debug-exit", device: new DebugExit({ events }), base: DEBUG_EXIT_PORT, size: 1 },
    { name: "serial-com1", device: serial, base: COM1_PORT, size: 8 },
    { name: "acpi-pm", device: acpiPm, base: ACPI_PM_BASE, size: ACPI_PM_SIZE },
  ];
  if (options.resetControl ?? true) {
    const device = new ResetControl(state.ports, { events });
    entries.push({ name: "reset-control", device, base: RESET_CONTROL_PORT, size: 1 });
  }
  return { entries, lock, serial, i8042, rtc, acpiPm };
}

/**
 * Inserts every entry on a PIO bus (throws BusOverlapError on a clash).
 *
 * @param bus the PIO bus of this thread
 * @param devices from {@link createLegacyDevices}
 * @example
 * ```ts
 * import { Bus } from "../bus.ts";
 * import { FakeIrqLine } from "../irq.ts";
 * import { createLegacyDevices, createLegacyState, insertLegacyDevices } from "./mod.ts";
 * import { RecordingSystemEvents } from "./system_events.ts";
 * const legacy = createLegacyDevices(createLegacyState(), {
 *   irq: () => new FakeIrqLine(),
 *   sink: () => {},
 *   events: new RecordingSystemEvents(),
 * });
 * insertLegacyDevices(new Bus(), legacy);
 * ```
 */
export function insertLegacyDevices(bus: Bus, devices: LegacyDevices): void {
  for (const e of devices.entries) bus.insert(e.device, e.base, e.size);
}
