/**
 * QEMU's sub-option syntax for the flags QEMU users type: `-smp`, `-m`,
 * `-drive`, `-qmp`, `-name`. Each turns into denovmm's own form or throws a
 * one-line message (the caller prefixes the flag).
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
        if (v !== "virtio") throw new Error(`if=${v}: only if=virtio is supported`);
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
      default:
        throw new Error(`unknown sub-option '${k}'`);
    }
  }
  if (!m.has("if")) throw new Error("needs if=virtio (QEMU's default interface is IDE)");
  return out.join(",");
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
