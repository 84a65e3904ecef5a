/**
 * What the QMP server controls: a small interface the machine implements,
 * so the protocol is testable without KVM (a fake target in the tests).
 *
 * @module
 */
import type { NicInfo } from "../vm/nic_control.ts";

/** QEMU's RunState names that apply here. */
export type QmpRunState =
  | "prelaunch"
  | "running"
  | "paused"
  | "shutdown"
  | "internal-error";

/** One vCPU as query-cpus-fast shows it. */
export interface QmpCpu {
  /** vCPU index. */
  index: number;
  /** Host thread id of its thread (0 before it started). */
  threadId: number;
}

/** One I/O thread as query-iothreads shows it. */
export interface QmpIothread {
  /** Its id (`iothread-0`). */
  id: string;
  /** Host thread id. */
  threadId: number;
}

/** One disk as query-block shows it. */
export interface QmpBlock {
  /** Device name (`virtio0`). */
  device: string;
  /** Image path. */
  file: string;
  /** Opened read-only. */
  readOnly: boolean;
  /** Size in bytes. */
  size: number;
  /** Opened with O_DIRECT (cache=none). */
  direct: boolean;
  /** Bytes allocated on the host (st_blocks * 512), when known. */
  actualSize?: number;
}

/** A NIC as `x-query-net` reports it: the machine's own view of it. */
export type QmpNic = NicInfo;

/**
 * The machine behind a QMP socket. Methods may return a Promise; the server
 * answers when it settles. Events (STOP, RESUME, ...) are not the target's
 * business: whoever implements it calls `QmpServer.emit` when they happen.
 */
export interface QmpTarget {
  /** The run state now. */
  status(): QmpRunState;
  /** Pauses every vCPU (no-op when paused). */
  stop(): void | Promise<void>;
  /** Resumes every vCPU (no-op when running). */
  cont(): void | Promise<void>;
  /** Presses the ACPI power button. */
  powerdown(): void;
  /** Resets the machine (as a guest reboot would). */
  reset(): void;
  /** Ends the VMM (after the reply has been sent). */
  quit(): void;
  /** vCPUs and their host threads. */
  cpus(): QmpCpu[];
  /** I/O threads. */
  iothreads(): QmpIothread[];
  /** Disks. */
  blocks(): QmpBlock[];
  /** Live statistics as JSON (x-query-denovmm-stats), if the machine keeps them. */
  stats?(): Record<string, unknown>;
  /** The guest name (`-name`), for query-name. */
  name?(): string | undefined;
  /**
   * Writes the display to a file (screendump); throws a QmpError or an
   * ErrnoError when it cannot.
   */
  screendump?(filename: string, format: "ppm" | "png"): void;
  /**
   * Presses keys together, holds them `holdMs`, releases them (send-key;
   * checked names and numbers). Calls queue behind each other.
   */
  sendKey?(keys: (string | number)[], holdMs: number): void;
  /** query-stats entries for target "vm" or "vcpu", QEMU's shape. */
  queryStats?(target: "vm" | "vcpu"): unknown[];
  /** x-query-net: the NICs, their link state and counters. */
  nets?(): QmpNic[];
  /** set_link: throws an Error with an `errorClass` (QEMU's) when it cannot. */
  setLink?(name: string, up: boolean): void;
}
