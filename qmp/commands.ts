/**
 * The QMP commands denovmm answers, with QEMU's argument checking and reply
 * shapes (qapi/*.json of QEMU 7.2, checked against the real QEMU in
 * qmp/qemu_compare_test.ts).
 *
 * @module
 */
import type { QmpTarget } from "./target.ts";
import { qcodeToKeyCode, qnumToKeyCode } from "../ui/qcodes.ts";

/** A QMP error: QEMU's error class and a one-line description. */
export class QmpError extends Error {
  /** QEMU's ErrorClass (`GenericError`, `CommandNotFound`, ...). */
  readonly errorClass: string;
  /**
   * @param errorClass the class
   * @param desc the description
   */
  constructor(errorClass: string, desc: string) {
    super(desc);
    this.name = "QmpError";
    this.errorClass = errorClass;
  }
}

/** Argument types the commands use. */
type ArgType = "str" | "bool" | "int" | "any" | readonly string[];

interface CommandSpec {
  /** Arguments: name -> [type, required]. */
  args: Record<string, readonly [ArgType, boolean]>;
  run(target: QmpTarget, args: Record<string, unknown>): unknown;
  /** Which event (with data) the server sends before the reply. */
  event?: readonly [string, Record<string, unknown>?];
}

function generic(desc: string): QmpError {
  return new QmpError("GenericError", desc);
}

/** One of send-key's `KeyValue`s: a QKeyCode name or a key number, checked as QEMU does. */
function qmpKey(k: unknown, i: number): string | number {
  if (k === null || typeof k !== "object" || Array.isArray(k)) {
    throw generic(`Invalid parameter type for 'keys[${i}]', expected: object`);
  }
  const { type, data } = k as { type?: unknown; data?: unknown };
  if (type === undefined) throw generic(`Parameter 'keys[${i}].type' is missing`);
  if (type !== "qcode" && type !== "number") {
    throw generic(`Parameter 'type' does not accept value '${type}'`);
  }
  if (data === undefined) throw generic(`Parameter 'keys[${i}].data' is missing`);
  if (type === "qcode") {
    if (typeof data !== "string") {
      throw generic("Invalid parameter type for 'data', expected: string");
    }
    if (qcodeToKeyCode(data) === undefined) {
      throw generic(`Parameter 'data' does not accept value '${data}'`);
    }
    return data;
  }
  if (!Number.isInteger(data)) {
    throw generic("Invalid parameter type for 'data', expected: integer");
  }
  if (qnumToKeyCode(data as number) === undefined) {
    throw generic(`Parameter 'data' does not accept value '${data}'`);
  }
  return data as number;
}

const STATS_TARGETS = ["vm", "vcpu", "cryptodev"] as const;

const COMMANDS: Record<string, CommandSpec> = {
  "query-status": {
    args: {},
    run(t) {
      const status = t.status();
      return { status, singlestep: false, running: status === "running" };
    },
  },
  stop: {
    args: {},
    run: (t) => t.stop(),
  },
  cont: {
    args: {},
    run: (t) => t.cont(),
  },
  system_powerdown: {
    args: {},
    run: (t) => t.powerdown(),
    event: ["POWERDOWN"],
  },
  system_reset: {
    args: {},
    run: (t) => t.reset(),
    event: ["RESET", { guest: false, reason: "host-qmp-system-reset" }],
  },
  quit: {
    args: {},
    run: () => {},
    event: ["SHUTDOWN", { guest: false, reason: "host-qmp-quit" }],
  },
  "query-kvm": {
    args: {},
    // denovmm runs guests on KVM only.
    run: () => ({ enabled: true, present: true }),
  },
  "query-name": {
    args: {},
    run(t) {
      const name = t.name?.();
      return name === undefined ? {} : { name };
    },
  },
  "query-cpus-fast": {
    args: {},
    run: (t) =>
      t.cpus().map((c) => ({
        "thread-id": c.threadId,
        props: { "core-id": c.index, "thread-id": 0, "socket-id": 0 },
        "qom-path": `/machine/unattached/device[${c.index}]`,
        "cpu-index": c.index,
        target: "x86_64",
      })),
  },
  "query-iothreads": {
    args: {},
    run: (t) =>
      t.iothreads().map((io) => ({
        id: io.id,
        "thread-id": io.threadId,
        "poll-max-ns": 0,
        "poll-grow": 0,
        "poll-shrink": 0,
        "aio-max-batch": 0,
      })),
  },
  "query-block": {
    args: {},
    run: (t) =>
      t.blocks().map((b, i) => ({
        device: b.device,
        qdev: `/machine/peripheral-anon/device[${i}]/virtio-backend`,
        locked: false,
        removable: false,
        inserted: {
          file: b.file,
          ro: b.readOnly,
          drv: "raw",
          "backing_file_depth": 0,
          encrypted: false,
          "detect_zeroes": "off",
          bps: 0,
          "bps_rd": 0,
          "bps_wr": 0,
          iops: 0,
          "iops_rd": 0,
          "iops_wr": 0,
          "node-name": `#block${100 + i}`,
          image: {
            filename: b.file,
            format: "raw",
            "virtual-size": b.size,
            "actual-size": b.actualSize,
            "dirty-flag": false,
          },
          cache: { writeback: !b.direct, direct: b.direct, "no-flush": false },
          "write_threshold": 0,
        },
        "io-status": "ok",
        type: "unknown",
      })),
  },
  "query-stats": {
    args: {
      target: [STATS_TARGETS, true],
      providers: ["any", false],
      vcpus: ["any", false],
    },
    run(t, a) {
      const target = a.target as string;
      if (!t.queryStats || target === "cryptodev") return [];
      return t.queryStats(target as "vm" | "vcpu");
    },
  },
  "set_link": {
    args: { name: ["str", true], up: ["bool", true] },
    run(t, a) {
      const name = a.name as string;
      if (!t.setLink) throw new QmpError("DeviceNotFound", `Device '${name}' not found`);
      try {
        t.setLink(name, a.up as boolean);
      } catch (e) {
        const cls = (e as { errorClass?: string }).errorClass;
        if (cls) throw new QmpError(cls, (e as Error).message);
        throw e;
      }
      return {};
    },
  },
  screendump: {
    args: {
      filename: ["str", true],
      device: ["str", false],
      head: ["int", false],
      format: [["ppm", "png"], false],
    },
    run(t, a) {
      if (a.device !== undefined) {
        throw new QmpError("DeviceNotFound", `Device '${a.device}' not found`);
      }
      if (a.head !== undefined && a.head !== 0) {
        throw generic(`Display head ${a.head} does not exist`);
      }
      if (!t.screendump) throw generic("There is no console to take a screendump from");
      const filename = a.filename as string;
      try {
        t.screendump(filename, (a.format as "ppm" | "png" | undefined) ?? "ppm");
      } catch (e) {
        if (e instanceof QmpError) throw e;
        // QEMU: "failed to open file '/x/y.ppm': No such file or directory".
        const why = (e as { description?: string }).description ?? (e as Error).message;
        throw generic(`failed to open file '${filename}': ${why}`);
      }
      return {};
    },
  },
  "send-key": {
    args: { keys: ["any", true], "hold-time": ["int", false] },
    run(t, a) {
      const keys = a.keys;
      if (!Array.isArray(keys)) throw generic("Invalid parameter type for 'keys', expected: array");
      const values = keys.map((k: unknown, i: number) => qmpKey(k, i));
      if (!t.sendKey) throw generic("This machine has no keyboard");
      // As QEMU: the reply comes at once, the release after hold-time.
      if (values.length > 0) t.sendKey(values, (a["hold-time"] as number | undefined) ?? 100);
      return {};
    },
  },
  "x-query-net": {
    args: {},
    run: (t) => t.nets?.() ?? [],
  },
  "x-query-denovmm-stats": {
    args: {},
    run(t) {
      if (!t.stats) throw generic("Statistics are not kept by this machine");
      return t.stats();
    },
  },
};

/** Names of every command (query-commands). */
export function commandNames(): string[] {
  return ["qmp_capabilities", "query-commands", "query-version", ...Object.keys(COMMANDS)];
}

/** What query-version reports: the greeting's version and package. */
export interface QmpVersion {
  /** QEMU's `qemu` triple. */
  qemu: { major: number; minor: number; micro: number };
  /** The `package` string. */
  package: string;
}

function checkArgs(spec: CommandSpec, args: Record<string, unknown>): void {
  for (const key of Object.keys(args)) {
    if (!(key in spec.args)) throw generic(`Parameter '${key}' is unexpected`);
  }
  for (const [name, [type, required]] of Object.entries(spec.args)) {
    const v = args[name];
    if (v === undefined) {
      if (required) throw generic(`Parameter '${name}' is missing`);
      continue;
    }
    if (type === "any") continue;
    const expected = Array.isArray(type) || type === "str"
      ? "string"
      : type === "bool"
      ? "boolean"
      : "integer";
    const ok = expected === "string"
      ? typeof v === "string"
      : expected === "boolean"
      ? typeof v === "boolean"
      : Number.isInteger(v);
    if (!ok) throw generic(`Invalid parameter type for '${name}', expected: ${expected}`);
    if (Array.isArray(type) && !type.includes(v as string)) {
      throw generic(`Parameter '${name}' does not accept value '${v}'`);
    }
  }
}

/** A command ready to run: the event to send first (if any) and the work. */
export interface PreparedCommand {
  /** Event name and data the server emits before the reply. */
  event?: readonly [string, Record<string, unknown>?];
  /** Runs it; the result (or a Promise of it) is the `return` value. */
  run(): unknown;
}

/**
 * Looks a command up and checks its arguments.
 *
 * @param target the machine
 * @param name the `execute` member
 * @param args the `arguments` member (already known to be an object)
 * @param version what query-version reports (the server's greeting)
 * @returns the command, ready to run
 * @throws QmpError for an unknown command or bad arguments
 * @example
 * ```ts ignore
 * const cmd = prepareCommand(target, "query-status", {});
 * console.log(await cmd.run());
 * ```
 */
export function prepareCommand(
  target: QmpTarget,
  name: string,
  args: Record<string, unknown>,
  version: QmpVersion = { qemu: { major: 0, minor: 1, micro: 0 }, package: "denovmm" },
): PreparedCommand {
  if (name === "query-commands") {
    return { run: () => commandNames().map((n) => ({ name: n })) };
  }
  if (name === "query-version") {
    checkArgs({ args: {}, run: () => {} }, args);
    return { run: () => ({ qemu: { ...version.qemu }, package: version.package }) };
  }
  const spec = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!spec) throw new QmpError("CommandNotFound", `The command ${name} has not been found`);
  checkArgs(spec, args);
  return { event: spec.event, run: () => spec.run(target, args) };
}
