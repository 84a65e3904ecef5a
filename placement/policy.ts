/**
 * The placement flags, parsed into a role table (sys/thread_role.ts):
 *
 * - `--vcpu-affinity 0=2,1=3` pins vCPU threads (a CPU list may follow:
 *   `0=2-3,1=4,5`, a token without `=` continues the previous list);
 * - `--affinity main=0,vcpu=2-3,iothread-0=1,aio=0-1,vnc-worker=1`;
 * - `--sched vcpu=fifo:10,aio=nice:5,main=other` (what `chrt -f 10`,
 *   `chrt -r N`, `chrt -o 0` and `nice -n N` set).
 *
 * Roles: `main`, `vcpu`, `vcpu-N`, `iothread`, `iothread-N`, `aio`,
 * `vnc-worker`. Parsing only: nothing here touches a thread.
 *
 * @module
 */
import { MAX_CPU, SCHED_FIFO, SCHED_OTHER, SCHED_RR } from "../sys/sched.ts";
import type { RoleTable, ThreadRolePolicy } from "../sys/thread_role.ts";

/** A placement flag with a bad value; the message is one line. */
export class PlacementError extends Error {
  /** @param message what is wrong */
  constructor(message: string) {
    super(message);
    this.name = "PlacementError";
  }
}

/** The placement flags as typed. */
export interface PlacementFlags {
  /** `--vcpu-affinity`. */
  vcpuAffinity?: string;
  /** `--affinity`. */
  affinity?: string;
  /** `--sched`. */
  sched?: string;
  /** `--cgroup`. */
  cgroup?: string;
}

const ROLE = /^(main|vcpu|vcpu-\d+|iothread|iothread-\d+|aio|vnc-worker)$/;

/**
 * Parses a CPU list as `taskset -c` takes it: `0-2,5`.
 *
 * @param text the list
 * @returns CPU numbers, ascending, without duplicates
 * @throws PlacementError when malformed
 * @example
 * ```ts
 * import { parseCpuList } from "./policy.ts";
 * console.log(parseCpuList("0-2,5")); // [0, 1, 2, 5]
 * ```
 */
export function parseCpuList(text: string): number[] {
  const set = new Set<number>();
  for (const part of text.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new PlacementError(`'${text}' is not a CPU list (like 0-2,5)`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new PlacementError(`'${part}' in '${text}' is an empty range`);
    if (b > MAX_CPU) throw new PlacementError(`CPU ${b} is out of range (0-${MAX_CPU})`);
    for (let c = a; c <= b; c++) set.add(c);
  }
  return [...set].sort((x, y) => x - y);
}

/** Splits `k=v,k=v2,more` into entries; tokens without `=` continue the last value. */
function entries(flag: string, text: string): [string, string][] {
  const out: [string, string][] = [];
  for (const tok of text.split(",")) {
    const eq = tok.indexOf("=");
    if (eq < 0) {
      if (out.length === 0 || tok === "") {
        throw new PlacementError(`Invalid ${flag} '${text}': expected ROLE=VALUE[,ROLE=VALUE]...`);
      }
      out[out.length - 1][1] += `,${tok}`;
    } else {
      out.push([tok.slice(0, eq), tok.slice(eq + 1)]);
    }
  }
  const seen = new Set<string>();
  for (const [k] of out) {
    if (seen.has(k)) throw new PlacementError(`Invalid ${flag} '${text}': '${k}' given twice`);
    seen.add(k);
  }
  return out;
}

function cpusFor(flag: string, key: string, value: string): number[] {
  try {
    return parseCpuList(value);
  } catch (e) {
    throw new PlacementError(`Invalid ${flag} ${key}=${value}: ${(e as Error).message}`);
  }
}

/**
 * Parses one `--sched` value: `fifo:N`, `rr:N`, `other`, `nice:N`.
 *
 * @param text the value
 * @returns the settings it stands for
 * @throws PlacementError when malformed
 * @example
 * ```ts
 * import { parseSchedPolicy } from "./policy.ts";
 * console.log(parseSchedPolicy("fifo:10")); // { policy: 1, priority: 10 }
 * ```
 */
export function parseSchedPolicy(text: string): ThreadRolePolicy {
  const m = /^(fifo|rr|other|nice)(?::(-?\d+))?$/.exec(text);
  if (!m) throw new PlacementError(`'${text}' is not fifo:N, rr:N, other or nice:N`);
  const n = m[2] === undefined ? undefined : Number(m[2]);
  switch (m[1]) {
    case "fifo":
    case "rr":
      if (n === undefined || n < 1 || n > 99) {
        throw new PlacementError(`'${text}': the real-time priority must be 1..99`);
      }
      return { policy: m[1] === "fifo" ? SCHED_FIFO : SCHED_RR, priority: n };
    case "other":
      if (n !== undefined) throw new PlacementError(`'${text}': other takes no number`);
      return { policy: SCHED_OTHER, priority: 0 };
    default:
      if (n === undefined || n < -20 || n > 19) {
        throw new PlacementError(`'${text}': the nice value must be -20..19`);
      }
      return { policy: SCHED_OTHER, priority: 0, nice: n };
  }
}

/**
 * Builds the role table from the flags.
 *
 * @param flags the flags as typed
 * @returns the table (empty when no flag was given)
 * @throws PlacementError naming the flag and the bad part
 * @example
 * ```ts
 * import { buildRoleTable } from "./policy.ts";
 * const t = buildRoleTable({ vcpuAffinity: "0=2,1=3", sched: "vcpu=fifo:10" });
 * console.log(t["vcpu-1"].cpus, t.vcpu.policy); // [3] 1
 * ```
 */
export function buildRoleTable(flags: PlacementFlags): RoleTable {
  const table: RoleTable = {};
  const add = (role: string, p: ThreadRolePolicy) => table[role] = { ...table[role], ...p };
  if (flags.vcpuAffinity !== undefined) {
    for (const [k, v] of entries("--vcpu-affinity", flags.vcpuAffinity)) {
      if (!/^\d+$/.test(k)) {
        throw new PlacementError(`Invalid --vcpu-affinity '${k}=${v}': '${k}' is not a vCPU index`);
      }
      add(`vcpu-${Number(k)}`, { cpus: cpusFor("--vcpu-affinity", k, v) });
    }
  }
  if (flags.affinity !== undefined) {
    for (const [k, v] of entries("--affinity", flags.affinity)) {
      if (!ROLE.test(k)) {
        throw new PlacementError(
          `Invalid --affinity role '${k}': use main, vcpu, vcpu-N, iothread, iothread-N, aio or vnc-worker`,
        );
      }
      if (table[k]?.cpus) {
        throw new PlacementError(`CPUs for ${k} given by both --vcpu-affinity and --affinity`);
      }
      add(k, { cpus: cpusFor("--affinity", k, v) });
    }
  }
  if (flags.sched !== undefined) {
    for (const [k, v] of entries("--sched", flags.sched)) {
      if (!ROLE.test(k)) {
        throw new PlacementError(
          `Invalid --sched role '${k}': use main, vcpu, vcpu-N, iothread, iothread-N, aio or vnc-worker`,
        );
      }
      try {
        add(k, parseSchedPolicy(v));
      } catch (e) {
        throw new PlacementError(`Invalid --sched ${k}=${v}: ${(e as Error).message}`);
      }
    }
  }
  return table;
}
