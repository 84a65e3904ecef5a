/**
 * Reading /proc and /sys through libc (so `--allow-ffi` is enough): small
 * text files whose size stat cannot tell, directory listings, and this
 * process's threads with their names and CPU times.
 *
 * @module
 */
import { libc } from "./libc.ts";
import { errno, ErrnoError } from "./errno.ts";
import { closeFd, O_RDONLY, openFile } from "./fd.ts";

const O_DIRECTORY = 0o200000;
const SYS_getdents64 = 217n;
const decoder = new TextDecoder();

/**
 * Reads a whole procfs/sysfs file (they report size 0) as text.
 *
 * @param path the file
 * @param maxBytes refuse longer files (default 1 MiB)
 * @returns its text
 * @example
 * ```ts
 * import { readProcText } from "./procfs.ts";
 * console.log(readProcText("/proc/self/status").includes("Pid:"));
 * ```
 */
export function readProcText(path: string, maxBytes = 1 << 20): string {
  const fd = openFile(path, O_RDONLY);
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(4096);
      const n = Number(libc.read(fd, buf, 4096n));
      if (n < 0) {
        const e = errno();
        if (e === 4) continue;
        throw new ErrnoError(`read ${path}`, e);
      }
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > maxBytes) throw new RangeError(`${path} is larger than ${maxBytes} bytes`);
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) {
      all.set(c, o);
      o += c.length;
    }
    return decoder.decode(all);
  } finally {
    closeFd(fd);
  }
}

/**
 * The names in a directory (without `.` and `..`).
 *
 * @param path the directory
 * @returns entry names
 * @example
 * ```ts
 * import { listDirectory } from "./procfs.ts";
 * console.log(listDirectory("/proc/self/task").length >= 1);
 * ```
 */
export function listDirectory(path: string): string[] {
  const fd = openFile(path, O_RDONLY | O_DIRECTORY);
  try {
    const names: string[] = [];
    const buf = new Uint8Array(16384);
    const addr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
    const v = new DataView(buf.buffer);
    for (;;) {
      const n = Number(libc.syscall(SYS_getdents64, BigInt(fd), addr, 16384n, 0n, 0n, 0n));
      if (n < 0) throw new ErrnoError(`getdents64 ${path}`, errno());
      if (n === 0) return names;
      for (let off = 0; off < n;) {
        const reclen = v.getUint16(off + 16, true);
        const nameStart = off + 19;
        let end = nameStart;
        while (end < off + reclen && buf[end] !== 0) end++;
        const name = decoder.decode(buf.subarray(nameStart, end));
        if (name !== "." && name !== "..") names.push(name);
        off += reclen;
      }
    }
  } finally {
    closeFd(fd);
  }
}

/** One thread of this process. */
export interface ThreadInfo {
  /** Kernel thread id. */
  tid: number;
  /** Its name (comm). */
  name: string;
  /** CPU time in user mode, seconds. */
  userSeconds: number;
  /** CPU time in kernel mode, seconds. */
  systemSeconds: number;
  /** Time spent running a KVM guest, seconds (counted inside userSeconds). */
  guestSeconds: number;
}

/** Clock ticks per second of /proc times (USER_HZ, 100 on x86 Linux). */
const USER_HZ = 100;

/**
 * This process's threads from /proc/self/task, with names and CPU times.
 * Threads that end while being read are left out.
 *
 * @returns the threads
 * @example
 * ```ts
 * import { processThreads } from "./procfs.ts";
 * console.log(processThreads()[0].tid > 0);
 * ```
 */
export function processThreads(): ThreadInfo[] {
  const out: ThreadInfo[] = [];
  for (const t of listDirectory("/proc/self/task")) {
    const tid = Number(t);
    let stat: string;
    try {
      stat = readProcText(`/proc/self/task/${t}/stat`);
    } catch {
      continue;
    }
    // "tid (comm) state ..." - comm may contain spaces and parentheses.
    const open = stat.indexOf("(");
    const close = stat.lastIndexOf(")");
    const fields = stat.slice(close + 2).split(" ");
    out.push({
      tid,
      name: stat.slice(open + 1, close),
      userSeconds: Number(fields[11]) / USER_HZ,
      systemSeconds: Number(fields[12]) / USER_HZ,
      guestSeconds: Number(fields[40]) / USER_HZ,
    });
  }
  return out;
}
