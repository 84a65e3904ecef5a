/**
 * boot_bench's log of finished boots: one JSON line each, synced, so a
 * nested host that hangs mid-run loses only the boot it was in and a fresh
 * host goes on from the log.
 *
 * @module
 */

/** What a log holds: the runtime floor, once, and the boots done by `round:key`. */
export interface BootLog<B> {
  floor?: { denoRunMs: number; workerMs: number };
  boots: Map<string, B>;
}

/** One line of the log. */
export type BootLogEntry<B> =
  | { floor: { denoRunMs: number; workerMs: number } }
  | { round: number; key: string; boot: B };

/**
 * Appends an entry and syncs it (the nested host writes through a 9p share
 * that caches writes, and may hang right after).
 *
 * @param path the log
 * @param entry the floor or a boot (Maps inside are kept)
 * @example
 * ```ts ignore
 * appendBootLog(log, { round: 0, key: "qemu/1", boot });
 * ```
 */
export function appendBootLog<B>(path: string, entry: BootLogEntry<B>): void {
  const line = JSON.stringify(entry, (_k, v) => v instanceof Map ? { $map: [...v] } : v);
  const f = Deno.openSync(path, { append: true, create: true });
  try {
    f.writeSync(new TextEncoder().encode(line + "\n"));
    f.syncSync();
  } finally {
    f.close();
  }
}

/**
 * Reads a log; a missing file is an empty log, and a line cut short (the
 * host hung while writing it) is skipped.
 *
 * @param path the log, or undefined for none
 * @returns the floor and the boots by `round:key`
 * @example
 * ```ts ignore
 * const done = readBootLog<Boot>(log).boots.get(`${r}:${key}`);
 * ```
 */
export function readBootLog<B>(path: string | undefined): BootLog<B> {
  const out: BootLog<B> = { boots: new Map() };
  let text = "";
  try {
    if (path) text = Deno.readTextFileSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  for (const line of text.split("\n")) {
    let e: BootLogEntry<B>;
    try {
      e = JSON.parse(
        line,
        (_k, v) => v && typeof v === "object" && "$map" in v ? new Map(v.$map) : v,
      );
    } catch {
      continue;
    }
    if ("floor" in e) out.floor = e.floor;
    else if ("boot" in e) out.boots.set(`${e.round}:${e.key}`, e.boot);
  }
  return out;
}
