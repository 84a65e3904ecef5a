/**
 * Where a process's resident memory is, from /proc/PID/smaps: each mapping
 * put in one class (the deno binary's text, V8's per-isolate copy of its
 * builtins, glibc's thread arenas, thread stacks, V8 heap pages, guest RAM,
 * ...), for bench/memory_bench.ts. Threads share the address space, so the
 * classes are the breakdown there is; which thread owns an arena or a V8
 * page is not in /proc.
 *
 * @module
 */

/** One mapping of /proc/PID/smaps. */
export interface Mapping {
  /** Start address. */
  start: number;
  /** Size in KiB. */
  sizeKib: number;
  /** Resident KiB. */
  rssKib: number;
  /** Anonymous resident KiB. */
  anonKib: number;
  /** Resident KiB in transparent huge pages. */
  thpKib: number;
  /** `rwxp` column. */
  perms: string;
  /** Path or pseudo-name ("" for anonymous memory). */
  name: string;
}

/** Parses the text of /proc/PID/smaps. */
export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+[ \t]*(.*)$/m.exec(block);
    if (!head) continue;
    const kib = (f: string) => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, "m").exec(block)?.[1] ?? 0);
    out.push({
      start: parseInt(head[1], 16),
      sizeKib: kib("Size"),
      rssKib: kib("Rss"),
      anonKib: kib("Anonymous"),
      thpKib: kib("AnonHugePages"),
      perms: head[3],
      name: head[4].trim(),
    });
  }
  return out;
}

/** Classes of resident memory, in the order they are printed. */
export const CLASSES = [
  "guest RAM",
  "deno binary: text and data (shared by all isolates)",
  "deno binary: builtins remapped per isolate",
  "other shared libraries",
  "malloc: main arena ([heap])",
  "malloc: thread arenas (64 MiB heaps)",
  "thread stacks",
  "V8 heap and code pages (anonymous, 256 KiB-aligned)",
  "other anonymous memory",
  "kernel-backed (kvm_run, eventfd, memfd, ...)",
] as const;

/** One of {@link CLASSES}. */
export type RssClass = typeof CLASSES[number];

const ARENA = 64 * 1024; // KiB: glibc's HEAP_MAX_SIZE on 64-bit
const V8_PAGE = 256; // KiB

/**
 * Puts each mapping in a class.
 *
 * @param maps the process's mappings, in address order
 * @param guestRamKib the guest RAM mapping's size (mappings of exactly this size are guest RAM)
 * @param exe the path of the deno binary
 * @returns resident KiB (and THP KiB) per class
 */
export function classify(
  maps: Mapping[],
  options: { guestRamKib?: number; exe: string },
): Map<RssClass, { rssKib: number; thpKib: number; count: number }> {
  const out = new Map<RssClass, { rssKib: number; thpKib: number; count: number }>();
  for (const c of CLASSES) out.set(c, { rssKib: 0, thpKib: 0, count: 0 });
  const add = (c: RssClass, m: Mapping) => {
    const e = out.get(c)!;
    e.rssKib += m.rssKib;
    e.thpKib += m.thpKib;
    if (m.rssKib > 0) e.count++;
  };
  const exeName = options.exe.split("/").pop()!;
  const firstExe = maps.find((m) => m.name === options.exe);
  maps.forEach((m, i) => {
    const prev = maps[i - 1];
    const next = maps[i + 1];
    if (options.guestRamKib !== undefined && m.sizeKib === options.guestRamKib && m.name === "") {
      add("guest RAM", m);
    } else if (m.name === options.exe || m.name.endsWith(`/${exeName}`)) {
      // The binary's own segments sit together at its load address; an
      // executable mapping of it elsewhere is V8 remapping its embedded
      // builtins next to one isolate's code range.
      const far = firstExe !== undefined && Math.abs(m.start - firstExe.start) > 2 ** 32;
      add(
        far && m.perms.includes("x")
          ? "deno binary: builtins remapped per isolate"
          : "deno binary: text and data (shared by all isolates)",
        m,
      );
    } else if (m.name === "[heap]") {
      add("malloc: main arena ([heap])", m);
    } else if (m.name === "[stack]") {
      add("thread stacks", m);
    } else if (m.name.startsWith("/")) {
      add("other shared libraries", m);
    } else if (m.name !== "") {
      add("kernel-backed (kvm_run, eventfd, memfd, ...)", m);
    } else if (isArena(m, next)) {
      add("malloc: thread arenas (64 MiB heaps)", m);
    } else if (
      prev && prev.name === "" && prev.perms === "---p" && prev.sizeKib === 4 &&
      m.perms === "rw-p" && prev.start + 4096 === m.start
    ) {
      add("thread stacks", m);
    } else if ((m.start / 1024) % V8_PAGE === 0 && m.sizeKib % V8_PAGE === 0) {
      add("V8 heap and code pages (anonymous, 256 KiB-aligned)", m);
    } else {
      add("other anonymous memory", m);
    }
  });
  return out;
}

function isArena(m: Mapping, next: Mapping | undefined): boolean {
  // A thread arena: an rw-p start at a 64 MiB-aligned address, the rest of
  // its 64 MiB still PROT_NONE right after it (or all of it in use).
  if (m.perms !== "rw-p" || (m.start / 1024) % ARENA !== 0) return false;
  if (m.sizeKib === ARENA) return true;
  return next !== undefined && next.perms === "---p" && next.name === "" &&
    m.sizeKib + next.sizeKib === ARENA;
}

/** Thread names of a process (comm of each task). */
export function threadNames(pid: number | "self"): string[] {
  const names: string[] = [];
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      names.push(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/comm`).trim());
    } catch {
      // exited meanwhile
    }
  }
  return names;
}

/** "deno ×2, tokio-runtime-w ×3, vcpu-0" */
export function summarizeThreads(names: string[]): string {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  return [...counts].map(([n, c]) => (c > 1 ? `${n} x${c}` : n)).join(", ");
}

/** A /proc/PID/status field in KiB (NaN when absent). */
export function statusKib(pid: number | "self", field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
    Deno.readTextFileSync(`/proc/${pid}/status`),
  );
  return m ? Number(m[1]) : NaN;
}
