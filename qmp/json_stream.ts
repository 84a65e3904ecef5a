/**
 * Splits a QMP byte stream into JSON texts, as QEMU's json-streamer does:
 * no newlines are needed between messages (`{"execute":"a"}{"execute":"b"}`
 * is two), a message may span lines, and brackets inside strings do not
 * count. Bytes outside any object or array (a stray word) form a text of
 * their own, which then fails to parse and earns a JSON parse error.
 *
 * Limits keep a hostile client from growing memory: a text longer than
 * `maxBytes` or nested deeper than `maxDepth` is reported once as `tooLarge`
 * / `tooDeep` and the stream is then useless (the caller drops the client).
 *
 * @module
 */

/** One thing the streamer found. */
export type JsonStreamItem =
  | { kind: "text"; text: string }
  | { kind: "tooLarge" }
  | { kind: "tooDeep" };

/** Limits for {@link JsonStreamer}. */
export interface JsonStreamLimits {
  /** Longest text in bytes (default 1 MiB; QEMU allows 64 MiB). */
  maxBytes?: number;
  /** Deepest nesting (default 1024, as QEMU). */
  maxDepth?: number;
}

const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACK = 0x5b;
const RBRACK = 0x5d;
const QUOTE = 0x22;
const APOS = 0x27;
const BACKSLASH = 0x5c;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/**
 * Incremental splitter of concatenated JSON texts.
 *
 * @example
 * ```ts
 * import { JsonStreamer } from "./json_stream.ts";
 * const s = new JsonStreamer();
 * const items = s.push(new TextEncoder().encode('{"execute":"stop"}{"exec'));
 * console.log(items.length); // 1
 * ```
 */
export class JsonStreamer {
  readonly #maxBytes: number;
  readonly #maxDepth: number;
  #parts: Uint8Array[] = [];
  #partBytes = 0;
  #depth = 0;
  /** Inside a string: its quote character, else 0. */
  #quote = 0;
  #escape = false;
  /** Collecting a bare scalar/garbage word at depth 0. */
  #bare = false;
  #failed = false;
  readonly #decoder = new TextDecoder();

  /** @param limits size and depth limits */
  constructor(limits: JsonStreamLimits = {}) {
    this.#maxBytes = limits.maxBytes ?? 1 << 20;
    this.#maxDepth = limits.maxDepth ?? 1024;
  }

  /** Whether a limit was hit (the stream cannot be resynchronised). */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Feeds bytes; returns the complete texts (and limit violations) in them.
   *
   * @param bytes the next bytes from the socket
   * @returns what completed
   */
  push(bytes: Uint8Array): JsonStreamItem[] {
    const out: JsonStreamItem[] = [];
    if (this.#failed) return out;
    let start = -1; // first byte of the current text inside `bytes`
    if (this.#partBytes > 0 || this.#depth > 0 || this.#bare) start = 0;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (this.#bare) {
        if (isSpace(b) || b === LBRACE || b === LBRACK) {
          out.push(this.#finish(bytes, start, i));
          start = -1;
          this.#bare = false;
          if (isSpace(b)) continue;
        } else {
          continue;
        }
      }
      if (this.#quote !== 0) {
        if (this.#escape) this.#escape = false;
        else if (b === BACKSLASH) this.#escape = true;
        else if (b === this.#quote) this.#quote = 0;
        continue;
      }
      if (this.#depth === 0) {
        if (isSpace(b)) continue;
        start = i;
        if (b !== LBRACE && b !== LBRACK) {
          this.#bare = true;
          continue;
        }
      }
      if (b === LBRACE || b === LBRACK) {
        if (++this.#depth > this.#maxDepth) return this.#fail(out, "tooDeep");
      } else if (b === RBRACE || b === RBRACK) {
        if (--this.#depth === 0) {
          out.push(this.#finish(bytes, start, i + 1));
          start = -1;
        }
      } else if (b === QUOTE || b === APOS) {
        this.#quote = b;
      }
    }
    if (start >= 0) {
      const rest = bytes.subarray(start);
      this.#partBytes += rest.length;
      if (this.#partBytes > this.#maxBytes) return this.#fail(out, "tooLarge");
      this.#parts.push(rest.slice());
    }
    return out;
  }

  #fail(out: JsonStreamItem[], kind: "tooLarge" | "tooDeep"): JsonStreamItem[] {
    this.#failed = true;
    this.#parts = [];
    this.#partBytes = 0;
    out.push({ kind });
    return out;
  }

  #finish(bytes: Uint8Array, start: number, end: number): JsonStreamItem {
    const tail = bytes.subarray(start, end);
    if (this.#partBytes + tail.length > this.#maxBytes) {
      this.#failed = true;
      return { kind: "tooLarge" };
    }
    let text: string;
    if (this.#parts.length === 0) {
      text = this.#decoder.decode(tail);
    } else {
      const all = new Uint8Array(this.#partBytes + tail.length);
      let o = 0;
      for (const p of this.#parts) {
        all.set(p, o);
        o += p.length;
      }
      all.set(tail, o);
      text = this.#decoder.decode(all);
    }
    this.#parts = [];
    this.#partBytes = 0;
    return { kind: "text", text };
  }
}
