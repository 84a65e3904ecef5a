/**
 * Bytes held in Deno's V8 code cache under a DENO_DIR, for the test and the
 * bench that check whether Worker starts grow it.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

/**
 * Bytes of the rows of Deno's V8 code cache under a DENO_DIR.
 *
 * @param denoDir the DENO_DIR
 * @returns specifier and data bytes of every row
 */
export function codeCacheBytes(denoDir: string): number {
  // Rows, not file sizes: SQLite's write-ahead log moves pages into the
  // database file at checkpoints, which changes the files' sizes, not what
  // they hold.
  const db = new DatabaseSync(`${denoDir}/v8_code_cache_v2`, { readOnly: true });
  try {
    const row = db.prepare(
      "SELECT sum(length(specifier) + length(data)) AS bytes FROM codecache",
    ).get() as { bytes: number | null };
    return row.bytes ?? 0;
  } finally {
    db.close();
  }
}
