/**
 * The command line: denovmm's long flags and the QEMU spellings a QEMU user
 * reaches for (`-m`, `-smp`, `-kernel`, `-drive`, `-qmp`, `-S`, ...), parsed
 * and validated into a {@link VmOptions}. Nothing here touches KVM or files.
 *
 * As in QEMU, an option's value is the next argument even when it starts
 * with `-` (so `--cpus -1` is a bad vCPU count, not an unknown option), and
 * QEMU's options also take two dashes. A single-value option given twice
 * (under either spelling) is an error.
 *
 * @module
 */
import { parseSize } from "./size.ts";
import { parseDiskOption } from "../devices/virtio/disk_file.ts";
import { nicsFromNetdevs, parseNicOption } from "../devices/virtio/nic_open.ts";
import { buildRoleTable, PlacementError, type PlacementFlags } from "../placement/policy.ts";
import {
  checkAccel,
  checkCpuModel,
  checkMachine,
  checkMonitor,
  checkRtc,
  checkVga,
  type Drive,
  guestName,
  iothreadObjects,
  memorySize,
  parseDrive,
  qmpSocketPath,
  serialBackend,
  smpCpus,
} from "./qemu_options.ts";
import { routeDevices } from "./qemu_devices.ts";
import { parseVncOption } from "../ui/vnc/options.ts";

/** A mistake in the command line; main.ts prints the message and exits 1. */
export class UsageError extends Error {
  /** @param message one line naming the problem */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** What the user asked for. */
export interface VmOptions {
  /** Kernel image path (bzImage or vmlinux); absent = the demo guest. */
  kernel?: string;
  /** Initial ramdisk path. */
  initrd?: string;
  /** Kernel command line. */
  append?: string;
  /** vCPUs. */
  cpus: number;
  /** Guest RAM in bytes. */
  memoryBytes: number;
  /** Disk specs (`--disk` syntax; `-drive` is translated), in order. */
  disks: string[];
  /** Restart the guest when it reboots (QEMU's default) instead of exiting. */
  reboot: boolean;
  /** Log unclaimed port and MMIO accesses. */
  logUnclaimed: boolean;
  /** QMP socket path. */
  qmp?: string;
  /** Start with the vCPUs paused (QMP `cont` starts them). */
  startPaused: boolean;
  /** Guest name (QMP query-name) and the main thread's name. */
  name?: { guest: string; process?: string };
  /** Write the process id here (removed at exit). */
  pidfile?: string;
  /** Detach from the terminal once the VM is set up. */
  daemonize: boolean;
  /** Thread placement and priority flags (syntax checked). */
  placement: PlacementFlags;
  /** Print statistics to stderr every this many seconds. */
  statsInterval?: number;
  /** `--vnc` (display): the option string, checked. */
  vnc?: string;
  /** `--display none` turns the framebuffer off; `--display vnc` is the default with --vnc. */
  display?: "none" | "vnc";
  /** `-device virtio-tablet-pci` (ui/vnc): a tablet even without --vnc (with it, one always is). */
  tablet: boolean;
  /** `--nic` values (with `--netdev`/`--device` pairs folded in), in order. */
  nics: string[];
  /** virtio-rng: off, or on with an optional byte rate limit. */
  rng: false | { rateBytesPerSec?: number };
  /** Where the guest console is: the 16550 (ttyS0) or virtio-console (hvc0). */
  console: "serial" | "virtio";
  /** `-serial file:PATH` / `null`: the console's output goes to this file instead of stdout. */
  serialFile?: string;
  /** Print help and exit. */
  help: boolean;
  /** Print the version and exit. */
  version: boolean;
}

/** Most vCPUs we describe (xAPIC ids fit in 8 bits; the IOAPIC takes one). */
export const MAX_CPUS = 254;
/** Default RAM, as a size string. */
export const DEFAULT_MEMORY = "256M";

/** The help text. */
export const USAGE = `Usage: deno run --allow-ffi main.ts [options]

Boots a Linux kernel (or, with no --kernel, the bundled demo guest) on KVM,
with the guest's serial console on this terminal. Press Ctrl-A x to quit.

Options (QEMU's spelling in brackets; both work):
  --kernel FILE     [-kernel] bzImage or vmlinux to boot
  --initrd FILE     [-initrd] initial ramdisk
  --append TEXT     [-append] kernel command line (default: console=ttyS0)
  --cpus N          [-smp N] number of vCPUs (default 1)
  --memory SIZE     [-m] guest RAM, e.g. 256M or 1G; a bare number is MiB (default ${DEFAULT_MEMORY})
  --disk SPEC       virtio-blk disk: path[,ro][,aio=threads|io_uring][,iothread=N][,cache=none|writeback]
                    [,snapshot=on] (writes go to a temporary copy; -snapshot: every disk)
  -drive file=PATH,if=virtio[,format=raw][,readonly=on][,cache=none|writeback][,aio=threads|io_uring]
  --no-reboot       [-no-reboot] exit with code 10 when the guest reboots; by default, as
                    QEMU does, a guest reboot restarts the machine (--reboot says so explicitly)
  --qmp unix:PATH,server,wait=off
                    [-qmp] QMP control socket (mode 0600); a bare PATH works too
  -S                start with the vCPUs paused; QMP 'cont' starts them (needs --qmp)
  --name NAME       [-name] guest name (guest=NAME[,process=THREADNAME])
  --pidfile FILE    [-pidfile] write the process id to FILE (removed at exit)
  --daemonize       [-daemonize] detach once the VM is set up (console output is discarded)
  -nographic        accepted for QEMU compatibility (the console is this terminal)
  -serial file:PATH|null   the console's output to a file (or nowhere) instead of this terminal
  -drive file=PATH,if=none,id=ID + -device virtio-blk-pci,drive=ID[,iothread=NAME][,num-queues=N]
  -object iothread,id=NAME   an I/O thread for -device ...,iothread=NAME (--disk/--nic: iothread=N)
  -device virtio-rng-pci[,max-bytes=N,period=MS]   the RNG, as --rng (on by default)
  Accepted as QEMU spells what denovmm does anyway (anything else is refused):
  -enable-kvm, -accel kvm, -machine pc[,accel=kvm], -cpu host|max, -serial stdio|mon:stdio,
  -monitor none, -vga none, -rtc base=utc, -nodefaults, -no-user-config, -nic none,
  -net none, -parallel none, -device isa-debug-exit[,iobase=0xf4,iosize=N] (always there)
  --vcpu-affinity 0=2,1=3
                    pin vCPU threads to host CPUs (CPU lists like 2-3 allowed)
  --affinity ROLE=CPUS[,ROLE=CPUS]...
                    pin threads by role: main, vcpu, vcpu-N, iothread, iothread-N, aio, vnc-worker
  --sched ROLE=POLICY[,...]
                    fifo:PRIO, rr:PRIO, other or nice:N per role (as chrt and nice set them)
  --cgroup PATH     run in this cgroup v2 directory; its threaded sub-cgroups named
                    after roles (PATH/vcpu, PATH/aio, ...) take those threads
  --stats-interval SECONDS
                    print a statistics line to stderr every SECONDS
  --log-unclaimed   log the first access to each port/MMIO address no device claims
  --vnc :N|HOST:N[,password-file=PATH][,websocket[=PORT]][,tablet=off]
                    [-vnc] a framebuffer (console=tty0 shows on it) served over VNC on
                    127.0.0.1:5900+N unless HOST is named; PS/2 keyboard input,
                    pointer through a virtio tablet (-device virtio-tablet-pci),
                    or with tablet=off through the PS/2 mouse (relative)
  --display none|vnc  [-display] none: no framebuffer device (the default without --vnc)
  --nic tap,ifname=NAME[,mac=M][,iothread=N][,vhost=on|off]
                    [-nic] virtio-net on a tap (several allowed); also
                    -netdev tap,id=ID,ifname=NAME + -device virtio-net-pci,netdev=ID
  --rng on|off|rate=N  virtio-rng from getrandom, on by default; rate in bytes per second
  --console serial|virtio  the guest console: 16550 ttyS0 (default) or virtio hvc0
  --version         print the version
  --help            print this help

Exit codes: 0 guest powered off or QMP quit, 1 bad input, 2 guest or VMM crashed,
4 stopped from the terminal, 10 guest rebooted (with --no-reboot),
odd codes from isa-debug-exit, 128+N ended by signal N.`;

type Key =
  | "kernel"
  | "initrd"
  | "append"
  | "cpus"
  | "memory"
  | "disk"
  | "drive"
  | "reboot"
  | "noReboot"
  | "nographic"
  | "logUnclaimed"
  | "qmp"
  | "startPaused"
  | "name"
  | "pidfile"
  | "daemonize"
  | "vcpuAffinity"
  | "affinity"
  | "sched"
  | "cgroup"
  | "statsInterval"
  | "vnc"
  | "display"
  | "nic"
  | "netdev"
  | "device"
  | "rng"
  | "console"
  | "enableKvm"
  | "accel"
  | "machine"
  | "cpu"
  | "serial"
  | "monitor"
  | "vga"
  | "rtc"
  | "nodefaults"
  | "noUserConfig"
  | "object"
  | "net"
  | "parallel"
  | "snapshot"
  | "help"
  | "version";

interface Spec {
  key: Key;
  names: readonly string[];
  flag?: boolean;
  multiple?: boolean;
}

const SPECS: readonly Spec[] = [
  { key: "kernel", names: ["--kernel", "-kernel"] },
  { key: "initrd", names: ["--initrd", "-initrd"] },
  { key: "append", names: ["--append", "-append"] },
  { key: "cpus", names: ["--cpus", "-smp", "--smp"] },
  { key: "memory", names: ["--memory", "-m", "--m"] },
  { key: "disk", names: ["--disk"], multiple: true },
  { key: "drive", names: ["-drive", "--drive"], multiple: true },
  { key: "reboot", names: ["--reboot"], flag: true },
  { key: "noReboot", names: ["--no-reboot", "-no-reboot"], flag: true },
  { key: "nographic", names: ["-nographic", "--nographic"], flag: true },
  { key: "logUnclaimed", names: ["--log-unclaimed"], flag: true },
  { key: "qmp", names: ["--qmp", "-qmp"] },
  { key: "startPaused", names: ["-S"], flag: true },
  { key: "name", names: ["--name", "-name"] },
  { key: "pidfile", names: ["--pidfile", "-pidfile"] },
  { key: "daemonize", names: ["--daemonize", "-daemonize"], flag: true },
  { key: "vcpuAffinity", names: ["--vcpu-affinity"] },
  { key: "affinity", names: ["--affinity"] },
  { key: "sched", names: ["--sched"] },
  { key: "cgroup", names: ["--cgroup"] },
  { key: "statsInterval", names: ["--stats-interval"] },
  { key: "vnc", names: ["--vnc", "-vnc"] },
  { key: "display", names: ["--display", "-display"] },
  { key: "nic", names: ["--nic", "-nic"], multiple: true },
  { key: "netdev", names: ["--netdev", "-netdev"], multiple: true },
  { key: "device", names: ["--device", "-device"], multiple: true },
  { key: "rng", names: ["--rng"] },
  { key: "console", names: ["--console"] },
  // What a QEMU command line carries by habit (machine/qemu_options.ts).
  { key: "enableKvm", names: ["-enable-kvm", "--enable-kvm"], flag: true },
  // Several -accel are QEMU's fallback list: the first one is what runs.
  { key: "accel", names: ["-accel", "--accel"], multiple: true },
  { key: "machine", names: ["-machine", "--machine", "-M"] },
  { key: "cpu", names: ["-cpu", "--cpu"] },
  { key: "serial", names: ["-serial", "--serial"] },
  { key: "monitor", names: ["-monitor", "--monitor"] },
  { key: "vga", names: ["-vga", "--vga"] },
  { key: "rtc", names: ["-rtc", "--rtc"] },
  { key: "nodefaults", names: ["-nodefaults", "--nodefaults"], flag: true },
  { key: "noUserConfig", names: ["-no-user-config", "--no-user-config"], flag: true },
  { key: "object", names: ["-object", "--object"], multiple: true },
  { key: "net", names: ["-net", "--net"] },
  { key: "parallel", names: ["-parallel", "--parallel"] },
  { key: "snapshot", names: ["-snapshot", "--snapshot"], flag: true },
  { key: "help", names: ["--help", "-h", "-help"], flag: true },
  { key: "version", names: ["--version", "-version"], flag: true },
];

const BY_NAME = new Map(SPECS.flatMap((s) => s.names.map((n) => [n, s] as const)));

interface Raw {
  values: Partial<Record<Key, string>>;
  lists: Partial<Record<Key, string[]>>;
  flags: Set<Key>;
  /** The spelling the user typed, for messages. */
  typed: Partial<Record<Key, string>>;
}

function scan(args: readonly string[]): Raw {
  const raw: Raw = { values: {}, lists: {}, flags: new Set(), typed: {} };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("-") || arg === "-") {
      throw new UsageError(`Unexpected argument '${arg}' (see --help)`);
    }
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const spec = BY_NAME.get(name);
    if (!spec) throw new UsageError(`Unknown option '${name}' (see --help)`);
    const seen = raw.typed[spec.key];
    if (seen !== undefined && !spec.multiple) {
      throw new UsageError(
        seen === name ? `${name} given twice` : `${name} given twice (also as ${seen})`,
      );
    }
    raw.typed[spec.key] = name;
    if (spec.flag) {
      if (eq >= 0) throw new UsageError(`${name} takes no value`);
      raw.flags.add(spec.key);
      continue;
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else if (i + 1 < args.length) value = args[++i];
    else throw new UsageError(`${name} needs a value (see --help)`);
    if (spec.multiple) (raw.lists[spec.key] ??= []).push(value);
    else raw.values[spec.key] = value;
  }
  return raw;
}

function sub<T>(flag: string, value: string, fn: (v: string) => T): T {
  try {
    return fn(value);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`Invalid ${flag} '${value}': ${(e as Error).message}`);
  }
}

/**
 * Parses and validates the command line.
 *
 * @param args Deno.args
 * @returns the options
 * @throws UsageError naming the problem
 * @example
 * ```ts
 * import { parseCli } from "./cli.ts";
 * const o = parseCli(["-kernel", "bzImage", "-m", "1G", "-smp", "2"]);
 * console.log(o.memoryBytes, o.cpus);
 * ```
 */
export function parseCli(args: readonly string[]): VmOptions {
  const raw = scan(args);
  const v = raw.values;
  const t = raw.typed;
  const cpusFlag = t.cpus ?? "--cpus";
  const cpusText = v.cpus === undefined ? "1" : sub(cpusFlag, v.cpus, smpCpus);
  if (!/^\d+$/.test(cpusText) || Number(cpusText) < 1 || Number(cpusText) > MAX_CPUS) {
    throw new UsageError(
      `Invalid ${cpusFlag} '${v.cpus}': use a whole number from 1 to ${MAX_CPUS}`,
    );
  }
  const memFlag = t.memory ?? "--memory";
  const memText = v.memory === undefined ? DEFAULT_MEMORY : sub(memFlag, v.memory, memorySize);
  const memoryBytes = parseSize(memText);
  if (memoryBytes === undefined) {
    throw new UsageError(
      `Invalid ${memFlag} '${memText}': use a size like 256M or 1G (a bare number is MiB)`,
    );
  }
  if (memoryBytes < 16 * 1024 * 1024) {
    throw new UsageError(`Invalid ${memFlag} '${memText}': at least 16M is needed`);
  }
  if (memoryBytes > 1024 ** 4) {
    throw new UsageError(`Invalid ${memFlag} '${memText}': at most 1T is supported`);
  }
  if (memoryBytes % 4096 !== 0) {
    throw new UsageError(`Invalid ${memFlag} '${memText}': must be a whole number of 4K pages`);
  }
  for (const key of ["kernel", "initrd", "pidfile", "cgroup"] as const) {
    if (v[key] === "") throw new UsageError(`${t[key]} needs a file name`);
  }
  if (v.initrd !== undefined && v.kernel === undefined) {
    throw new UsageError(`${t.initrd} needs ${t.kernel ?? "--kernel"}`);
  }
  if (v.append !== undefined && v.kernel === undefined) {
    throw new UsageError(`${t.append} needs --kernel`);
  }
  // Accepted where they ask for what denovmm does; refused naming what it has.
  const accel = raw.lists.accel?.[0];
  if (accel !== undefined) sub(t.accel!, accel, checkAccel);
  if (v.machine !== undefined) sub(t.machine!, v.machine, checkMachine);
  if (v.cpu !== undefined) sub(t.cpu!, v.cpu, checkCpuModel);
  const serialFile = v.serial === undefined ? undefined : sub(t.serial!, v.serial, serialBackend);
  if (v.monitor !== undefined) sub(t.monitor!, v.monitor, checkMonitor);
  if (v.vga !== undefined) sub(t.vga!, v.vga, checkVga);
  if (v.rtc !== undefined) sub(t.rtc!, v.rtc, checkRtc);
  if (v.net !== undefined && v.net !== "none") {
    throw new UsageError(
      `Invalid ${t.net} '${v.net}': only none (a NIC is -nic tap,..., or -netdev tap with -device virtio-net-pci)`,
    );
  }
  if (v.parallel !== undefined && v.parallel !== "none") {
    throw new UsageError(`Invalid ${t.parallel} '${v.parallel}': there is no parallel port (none)`);
  }
  let iothreads: Map<string, number>;
  try {
    iothreads = iothreadObjects(raw.lists.object ?? []);
  } catch (e) {
    throw new UsageError(`Invalid ${t.object} ${(e as Error).message}`);
  }
  const disks = [...raw.lists.disk ?? []];
  const detached: Drive[] = [];
  for (const text of raw.lists.drive ?? []) {
    const d = sub("-drive", text, parseDrive);
    if (d.detached) detached.push(d);
    else disks.push(d.disk);
  }
  // -device: virtio-blk-pci attaches an if=none drive, after the if=virtio ones (QEMU's order).
  let devices;
  try {
    devices = routeDevices(raw.lists.device ?? [], detached, iothreads);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  disks.push(...devices.disks);
  // -snapshot: every disk writes to a temporary copy (a disk's own snapshot=off keeps it out).
  if (raw.flags.has("snapshot")) {
    for (let i = 0; i < disks.length; i++) {
      if (!/(^|,)snapshot=/.test(disks[i])) disks[i] += ",snapshot=on";
    }
  }
  for (const d of disks) {
    try {
      parseDiskOption(d);
    } catch (e) {
      throw new UsageError(`Invalid --disk '${d}': ${(e as Error).message}`);
    }
  }
  if (disks.length > 0 && v.kernel === undefined) {
    throw new UsageError(`${t.disk ?? t.drive} needs --kernel`);
  }
  const f = raw.flags;
  if (f.has("reboot") && f.has("noReboot")) {
    throw new UsageError(`--reboot and ${t.noReboot} contradict each other`);
  }
  const qmp = v.qmp === undefined ? undefined : sub(t.qmp!, v.qmp, qmpSocketPath);
  if (f.has("startPaused") && qmp === undefined) {
    throw new UsageError("-S needs --qmp (QMP 'cont' starts the vCPUs)");
  }
  let statsInterval: number | undefined;
  if (v.statsInterval !== undefined) {
    statsInterval = Number(v.statsInterval);
    if (!/^\d+(\.\d+)?$/.test(v.statsInterval) || !(statsInterval >= 0.1)) {
      throw new UsageError(
        `Invalid --stats-interval '${v.statsInterval}': use a number of seconds, at least 0.1`,
      );
    }
  }
  // --vnc / --display (ui/vnc).
  if (v.vnc !== undefined) {
    try {
      parseVncOption(v.vnc);
    } catch (e) {
      throw new UsageError(`Invalid ${t.vnc} '${v.vnc}': ${(e as Error).message}`);
    }
    if (v.kernel === undefined) throw new UsageError(`${t.vnc} needs --kernel`);
  }
  if (v.display !== undefined && v.display !== "none" && v.display !== "vnc") {
    throw new UsageError(`Invalid ${t.display} '${v.display}': use none or vnc`);
  }
  if (v.display === "none" && v.vnc !== undefined) {
    throw new UsageError(`${t.vnc} needs a display: drop ${t.display} none`);
  }
  if (v.display === "vnc" && v.vnc === undefined) {
    throw new UsageError(`${t.display} vnc needs --vnc :N`);
  }
  // --- network, entropy and console (H6) ---
  // -nic none: no NIC, as QEMU (denovmm adds none by default).
  let nics = (raw.lists.nic ?? []).filter((n) => n !== "none");
  if (nics.length > 0 && nics.length < (raw.lists.nic ?? []).length) {
    throw new UsageError(`${t.nic} none and ${t.nic} ${nics[0]} contradict each other`);
  }
  for (const n of nics) sub(t.nic ?? "--nic", n, parseNicOption);
  try {
    nics = [...nics, ...nicsFromNetdevs(raw.lists.netdev ?? [], devices.nicDevices)];
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const rngText = v.rng ?? "on";
  let rng: VmOptions["rng"];
  if (devices.rng) {
    if (v.rng !== undefined) {
      throw new UsageError("--rng and -device virtio-rng-pci both set the RNG: give one");
    }
    rng = devices.rng;
  } else if (rngText === "off") rng = false;
  else if (rngText === "on") rng = {};
  else if (/^rate=\d{1,12}$/.test(rngText) && Number(rngText.slice(5)) > 0) {
    rng = { rateBytesPerSec: Number(rngText.slice(5)) };
  } else throw new UsageError(`Invalid --rng '${rngText}': use on, off or rate=BYTES_PER_SECOND`);
  const consoleText = v.console ?? "serial";
  if (consoleText !== "serial" && consoleText !== "virtio") {
    throw new UsageError(`Invalid --console '${consoleText}': use serial or virtio`);
  }
  if ((nics.length > 0 || consoleText === "virtio") && v.kernel === undefined) {
    throw new UsageError("--nic and --console virtio need --kernel");
  }
  // --- end H6 ---
  const placement: PlacementFlags = {
    vcpuAffinity: v.vcpuAffinity,
    affinity: v.affinity,
    sched: v.sched,
    cgroup: v.cgroup,
  };
  try {
    buildRoleTable(placement);
  } catch (e) {
    if (e instanceof PlacementError) throw new UsageError(e.message);
    throw e;
  }
  return {
    kernel: v.kernel,
    initrd: v.initrd,
    append: v.append,
    cpus: Number(cpusText),
    memoryBytes,
    disks,
    reboot: !f.has("noReboot"),
    logUnclaimed: f.has("logUnclaimed"),
    qmp,
    startPaused: f.has("startPaused"),
    name: v.name === undefined ? undefined : sub(t.name!, v.name, guestName),
    pidfile: v.pidfile,
    daemonize: f.has("daemonize"),
    placement,
    statsInterval,
    vnc: v.vnc,
    display: v.display as VmOptions["display"],
    tablet: devices.tablet,
    nics,
    rng,
    console: consoleText,
    serialFile,
    help: f.has("help"),
    version: f.has("version"),
  };
}
