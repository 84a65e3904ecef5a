/**
 * QEMU's sub-option syntax for the flags QEMU users type: `-smp`, `-m`,
 * `-drive`, `-qmp`, `-name`, and the flags a QEMU command line carries by
 * habit (`-enable-kvm`, `-accel`, `-machine`, `-cpu`, `-serial`, `-monitor`,
 * `-vga`, `-rtc`): those are accepted where they ask for what denovmm does
 * anyway and refused, naming what denovmm has instead, where they ask for
 * something else. Each turns into denovmm's own form or throws a one-line
 * message (the caller prefixes the flag).
 *
 * @module
 */

/**
 * Splits `a,b=c,,d` into key/value pairs the way QEMU's option parser does
 * (`,,` is a literal comma). A first item without `=` gets the implied key.
 *
 * @param text the option value
 * @param implied key for a leading bare value (`-smp 2` -> cpus=2)
 * @returns pairs in order
 * @example
 * ```ts
 * import { qemuOptions } from "./qemu_options.ts";
 * console.log(qemuOptions("file=a,,b.img,if=virtio", "file")); // [["file","a,b.img"],["if","virtio"]]
 * ```
 */
export function qemuOptions(text: string, implied?: string): [string, string][] {
  const items: string[] = [];
  let cur = "";
  for (let i = 0; i < text.length; i++) {
    if (text[i] === ",") {
      if (text[i + 1] === ",") {
        cur += ",";
        i++;
        continue;
      }
      items.push(cur);
      cur = "";
    } else {
      cur += text[i];
    }
  }
  items.push(cur);
  return items.map((item, i) => {
    const eq = item.indexOf("=");
    if (eq < 0) return i === 0 && implied !== undefined ? [implied, item] : [item, ""];
    return [item.slice(0, eq), item.slice(eq + 1)];
  });
}

function once(pairs: [string, string][]): Map<string, string> {
  const m = new Map<string, string>();
  for (const [k, v] of pairs) {
    if (m.has(k)) throw new Error(`'${k}' given twice`);
    m.set(k, v);
  }
  return m;
}

function onOff(key: string, v: string): boolean {
  if (v === "on" || v === "" || v === "yes" || v === "true") return true;
  if (v === "off" || v === "no" || v === "false") return false;
  throw new Error(`${key}=${v}: use on or off`);
}

/**
 * `-smp N` / `-smp cpus=N[,maxcpus=N]` -> the vCPU count as text.
 *
 * @param text the value
 * @returns the count as typed (validated by the caller)
 * @example
 * ```ts
 * import { smpCpus } from "./qemu_options.ts";
 * console.log(smpCpus("cpus=4,maxcpus=4")); // "4"
 * ```
 */
export function smpCpus(text: string): string {
  const m = once(qemuOptions(text, "cpus"));
  for (const k of m.keys()) {
    if (k !== "cpus" && k !== "maxcpus" && k !== "sockets" && k !== "cores" && k !== "threads") {
      throw new Error(`unknown sub-option '${k}'`);
    }
  }
  const cpus = m.get("cpus");
  if (cpus === undefined) throw new Error("needs cpus=N");
  const max = m.get("maxcpus");
  if (max !== undefined && max !== cpus) {
    throw new Error("maxcpus must equal cpus (no CPU hotplug)");
  }
  const topo = ["sockets", "cores", "threads"].map((k) => m.get(k));
  if (topo.some((t) => t !== undefined)) {
    const product = topo.reduce((p, t) => p * Number(t ?? "1"), 1);
    if (product !== Number(cpus)) {
      throw new Error(`sockets*cores*threads is ${product}, not cpus=${cpus}`);
    }
  }
  return cpus;
}

/**
 * `-m 1G` / `-m size=1G` -> the size text.
 *
 * @param text the value
 * @returns the size as typed
 * @example
 * ```ts
 * import { memorySize } from "./qemu_options.ts";
 * console.log(memorySize("size=2G")); // "2G"
 * ```
 */
export function memorySize(text: string): string {
  const m = once(qemuOptions(text, "size"));
  for (const k of m.keys()) {
    if (k !== "size") throw new Error(`'${k}' is not supported (no memory hotplug)`);
  }
  return m.get("size")!;
}

/** A `-drive` turned into a `--disk` spec. */
export interface Drive {
  /** `path[,ro][,cache=..][,aio=..][,serial=..]`. */
  disk: string;
  /** Its `id=`, if given. */
  id?: string;
  /** `if=none`: a `-device virtio-blk-pci,drive=ID` attaches it. */
  detached: boolean;
}

/**
 * `-drive file=PATH,if=virtio|none[,id=ID][,format=raw][,readonly=on][,cache=..][,aio=..]`.
 *
 * @param text the value
 * @returns the disk spec, its id, and whether it waits for a device
 * @example
 * ```ts
 * import { parseDrive } from "./qemu_options.ts";
 * console.log(parseDrive("file=a.img,if=none,id=d0").detached); // true
 * ```
 */
export function parseDrive(text: string): Drive {
  const m = once(qemuOptions(text));
  const file = m.get("file");
  if (!file) throw new Error("needs file=PATH");
  if (file.includes(",")) throw new Error("a file name with a comma is not supported");
  const out = [file];
  for (const [k, v] of m) {
    switch (k) {
      case "file":
      case "id":
      case "media":
        if (k === "media" && v !== "disk") throw new Error(`media=${v}: only disk`);
        break;
      case "if":
        if (v !== "virtio" && v !== "none") {
          throw new Error(`if=${v}: use if=virtio, or if=none with -device virtio-blk-pci`);
        }
        break;
      case "format":
        if (v !== "raw") throw new Error(`format=${v}: only raw images are supported`);
        break;
      case "readonly":
        if (onOff(k, v)) out.push("ro");
        break;
      case "cache":
        if (v === "none" || v === "directsync") out.push("cache=none");
        else if (v === "writeback") out.push("cache=writeback");
        else throw new Error(`cache=${v}: use none or writeback`);
        break;
      case "aio":
        if (v === "threads" || v === "io_uring") out.push(`aio=${v}`);
        else throw new Error(`aio=${v}: use threads or io_uring`);
        break;
      case "serial":
        out.push(`serial=${v}`);
        break;
      case "snapshot":
        // Kept when off too: a global -snapshot leaves this disk out.
        out.push(`snapshot=${onOff(k, v) ? "on" : "off"}`);
        break;
      default:
        throw new Error(`unknown sub-option '${k}'`);
    }
  }
  if (!m.has("if")) {
    throw new Error("needs if=virtio, or if=none with -device (QEMU's default interface is IDE)");
  }
  const detached = m.get("if") === "none";
  if (detached && !m.get("id")) {
    throw new Error("if=none needs id=ID for -device virtio-blk-pci,drive=ID");
  }
  return { disk: out.join(","), id: m.get("id") || undefined, detached };
}

/**
 * `-drive file=PATH,if=virtio[,format=raw][,readonly=on][,cache=..][,aio=..]`
 * -> a `--disk` spec.
 *
 * @param text the value
 * @returns `path[,ro][,cache=..][,aio=..]`
 * @example
 * ```ts
 * import { driveToDisk } from "./qemu_options.ts";
 * console.log(driveToDisk("file=a.img,if=virtio,format=raw,readonly=on")); // "a.img,ro"
 * ```
 */
export function driveToDisk(text: string): string {
  const d = parseDrive(text);
  if (d.detached) throw new Error("if=none needs a -device virtio-blk-pci,drive=ID");
  return d.disk;
}

/**
 * `-qmp unix:PATH,server,wait=off` (or a bare path) -> the socket path.
 *
 * @param text the value
 * @returns the path
 * @example
 * ```ts
 * import { qmpSocketPath } from "./qemu_options.ts";
 * console.log(qmpSocketPath("unix:/run/vm.qmp,server,wait=off")); // "/run/vm.qmp"
 * ```
 */
export function qmpSocketPath(text: string): string {
  if (!text.includes(":") && !text.includes(",")) {
    if (!text) throw new Error("needs a socket path");
    return text;
  }
  const pairs = qemuOptions(text);
  const [first, ...rest] = pairs;
  const head = first[1] === "" ? first[0] : `${first[0]}=${first[1]}`;
  if (!head.startsWith("unix:")) {
    throw new Error("only unix:PATH sockets are supported (e.g. unix:/run/vm.qmp,server,wait=off)");
  }
  const path = head.slice(5);
  if (!path) throw new Error("needs a socket path after unix:");
  const m = once(rest);
  let wait = true;
  for (const [k, v] of m) {
    if (k === "server") {
      if (!onOff(k, v)) throw new Error("server=off: denovmm only listens");
    } else if (k === "wait" || k === "nowait") {
      wait = k === "nowait" ? false : onOff(k, v);
    } else {
      throw new Error(`unknown sub-option '${k}'`);
    }
  }
  if (!m.has("server")) throw new Error("add ',server': denovmm listens, it does not connect");
  if (wait) throw new Error("add ',wait=off': denovmm does not wait for a client before starting");
  return path;
}

/**
 * `-name NAME` / `-name guest=NAME[,process=P][,debug-threads=on]`.
 *
 * @param text the value
 * @returns the guest name and the process (main thread) name
 * @example
 * ```ts
 * import { guestName } from "./qemu_options.ts";
 * console.log(guestName("guest=web,process=vm-web")); // { guest: "web", process: "vm-web" }
 * ```
 */
export function guestName(text: string): { guest: string; process?: string } {
  const m = once(qemuOptions(text, "guest"));
  for (const [k, v] of m) {
    if (k === "debug-threads") onOff(k, v); // threads are always named here
    else if (k !== "guest" && k !== "process") throw new Error(`unknown sub-option '${k}'`);
  }
  const guest = m.get("guest") ?? "";
  if (!guest) throw new Error("needs a name");
  return { guest, process: m.get("process") };
}

/**
 * `-accel kvm[,kernel-irqchip=on]`: denovmm runs guests on KVM, with the
 * interrupt controllers in the kernel.
 *
 * @param text the value (for `-machine accel=`, the first of its `:` list)
 * @throws Error naming an accelerator or sub-option denovmm does not have
 * @example
 * ```ts
 * import { checkAccel } from "./qemu_options.ts";
 * checkAccel("kvm,kernel-irqchip=on");
 * ```
 */
export function checkAccel(text: string): void {
  for (const [k, v] of once(qemuOptions(text, "accel"))) {
    if (k === "accel") {
      if (v !== "kvm") throw new Error("denovmm runs guests on KVM only: use kvm");
    } else if (k === "kernel-irqchip") {
      if (!onOff(k, v)) throw new Error("kernel-irqchip=off: the irqchip is in the kernel (on)");
    } else {
      throw new Error(`unknown sub-option '${k}'`);
    }
  }
}

/** What `-machine usb=on` and its kind ask for, none of which denovmm has. */
const ABSENT_MACHINE_PARTS: Record<string, string> = {
  usb: "USB controller",
  vmport: "VMware port",
  smm: "System Management Mode",
  hpet: "HPET (kvm-clock and the local APIC timer serve)",
};

/**
 * `-machine [type=]pc[,accel=kvm][,kernel-irqchip=on][,usb=off]...`:
 * denovmm has one machine, a PC with a PCI host bridge, ACPI and no
 * firmware (the kernel is loaded directly, as with QEMU's `-kernel`), the
 * closest of QEMU's types being `pc`.
 *
 * @param text the value
 * @throws Error naming a type, accelerator or part denovmm does not have
 * @example
 * ```ts
 * import { checkMachine } from "./qemu_options.ts";
 * checkMachine("pc,accel=kvm,usb=off");
 * ```
 */
export function checkMachine(text: string): void {
  for (const [k, v] of once(qemuOptions(text, "type"))) {
    if (k === "type") {
      if (v !== "pc" && !/^pc-i440fx-\d+\.\d+$/.test(v)) {
        throw new Error("denovmm has one machine type, a PC without firmware: use pc");
      }
    } else if (k === "accel") {
      checkAccel(v.split(":")[0]);
    } else if (k === "kernel-irqchip") {
      checkAccel(`kvm,kernel-irqchip=${v}`);
    } else if (k in ABSENT_MACHINE_PARTS) {
      if (onOff(k, v)) throw new Error(`${k}=on: denovmm has no ${ABSENT_MACHINE_PARTS[k]}`);
    } else {
      throw new Error(`unknown sub-option '${k}'`);
    }
  }
}

/**
 * `-cpu host` (or `max`, the same under KVM): the guest sees the host's
 * CPUID as KVM supports it. Named models and feature lists are refused.
 *
 * @param text the value
 * @throws Error for anything but host or max
 * @example
 * ```ts
 * import { checkCpuModel } from "./qemu_options.ts";
 * checkCpuModel("host");
 * ```
 */
export function checkCpuModel(text: string): void {
  if (text !== "host" && text !== "max") {
    throw new Error(
      "only host (or max): the guest sees the host's CPUID as KVM supports it; no named models or feature lists",
    );
  }
}

/**
 * `-serial stdio` or `-serial mon:stdio` (the 16550's console is this
 * terminal; its Ctrl-A keys are denovmm's), `-serial file:PATH` (the
 * output written to a file) or `-serial null` (discarded).
 *
 * @param text the value
 * @returns the file the output goes to, or undefined for the terminal
 * @throws Error for any other backend
 * @example
 * ```ts
 * import { serialBackend } from "./qemu_options.ts";
 * console.log(serialBackend("file:console.log")); // "console.log"
 * ```
 */
export function serialBackend(text: string): string | undefined {
  if (text === "stdio" || text === "mon:stdio") return undefined;
  if (text === "null") return "/dev/null";
  if (text.startsWith("file:") && text.length > 5) return text.slice(5);
  throw new Error("the serial console is this terminal (stdio, mon:stdio), file:PATH or null");
}

/**
 * `-monitor none`: there is no human monitor; QMP is `-qmp`.
 *
 * @param text the value
 * @throws Error for any monitor but none
 */
export function checkMonitor(text: string): void {
  if (text !== "none") throw new Error("no human monitor here: use -qmp unix:PATH,server,wait=off");
}

/**
 * `-vga none`: there is no emulated VGA card; `-vnc :N` adds a framebuffer.
 *
 * @param text the value
 * @throws Error for any card but none
 */
export function checkVga(text: string): void {
  if (text !== "none") throw new Error("no emulated VGA card: -vnc :N adds a framebuffer");
}

/**
 * `-rtc base=utc[,clock=host][,driftfix=none]`: the CMOS clock reads the
 * host's UTC time.
 *
 * @param text the value
 * @throws Error for a base or clock denovmm does not keep
 * @example
 * ```ts
 * import { checkRtc } from "./qemu_options.ts";
 * checkRtc("base=utc,clock=host");
 * ```
 */
export function checkRtc(text: string): void {
  const want: Record<string, string> = { base: "utc", clock: "host", driftfix: "none" };
  for (const [k, v] of once(qemuOptions(text, "base"))) {
    if (!(k in want)) throw new Error(`unknown sub-option '${k}'`);
    if (v !== want[k]) throw new Error(`${k}=${v}: the CMOS clock keeps ${k}=${want[k]}`);
  }
}

/**
 * `-object iothread,id=NAME` (several): each name, in order, becomes the
 * index `iothread=N` takes in `--disk` and `--nic`.
 *
 * @param objects the values
 * @returns index by name
 * @example
 * ```ts
 * import { iothreadObjects } from "./qemu_options.ts";
 * console.log(iothreadObjects(["iothread,id=io0", "iothread,id=io1"]).get("io1")); // 1
 * ```
 */
export function iothreadObjects(objects: readonly string[]): Map<string, number> {
  const ids = new Map<string, number>();
  for (const text of objects) {
    const m = once(qemuOptions(text, "qom-type"));
    if (m.get("qom-type") !== "iothread") {
      throw new Error(`'${text}': only -object iothread,id=ID is supported`);
    }
    for (const k of m.keys()) {
      if (k !== "qom-type" && k !== "id") throw new Error(`'${text}': unknown sub-option '${k}'`);
    }
    const id = m.get("id");
    if (!id) throw new Error(`'${text}': needs id=ID`);
    if (ids.has(id)) throw new Error(`'${text}': id ${id} is used twice`);
    ids.set(id, ids.size);
  }
  return ids;
}
