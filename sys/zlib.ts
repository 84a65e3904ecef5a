/**
 * zlib streams through libz (dlopen of libz.so.1): one persistent deflate
 * stream per user, flushed with Z_SYNC_FLUSH after each message, as RFB's
 * ZRLE and Tight encodings need (the client keeps one inflate stream for the
 * whole connection). node:zlib under Deno has no synchronous persistent
 * stream (`_processChunk` fails), hence libz.
 *
 * The z_stream lives in an ArrayBuffer whose backing store never moves;
 * libz keeps a pointer back to it, so one Deflater owns one z_stream for its
 * whole life.
 *
 * @module
 */
import { viewAddress } from "./address.ts";

const symbols = {
  deflateInit_: { parameters: ["buffer", "i32", "buffer", "i32"], result: "i32" },
  deflate: { parameters: ["buffer", "i32"], result: "i32" },
  deflateEnd: { parameters: ["buffer"], result: "i32" },
  deflateBound: { parameters: ["buffer", "u64"], result: "u64" },
  inflateInit_: { parameters: ["buffer", "buffer", "i32"], result: "i32" },
  inflateInit2_: { parameters: ["buffer", "i32", "buffer", "i32"], result: "i32" },
  inflate: { parameters: ["buffer", "i32"], result: "i32" },
  /** inflate on Deno's blocking pool: a one-shot member of tens of MiB (a kernel). */
  inflate_nb: { name: "inflate", parameters: ["buffer", "i32"], result: "i32", nonblocking: true },
  inflateEnd: { parameters: ["buffer"], result: "i32" },
  zlibVersion: { parameters: [], result: "pointer" },
  compress2: { parameters: ["buffer", "buffer", "buffer", "u64", "i32"], result: "i32" },
  compressBound: { parameters: ["u64"], result: "u64" },
} as const satisfies Deno.ForeignLibraryInterface;

let lib: Deno.DynamicLibrary<typeof symbols>["symbols"] | undefined;
let version: Uint8Array<ArrayBuffer> | undefined;

function z(): Deno.DynamicLibrary<typeof symbols>["symbols"] {
  if (!lib) {
    lib = Deno.dlopen("libz.so.1", symbols).symbols;
    const p = lib.zlibVersion();
    const s = p === null ? "1" : Deno.UnsafePointerView.getCString(p);
    version = new TextEncoder().encode(s + "\0");
  }
  return lib;
}

let available: boolean | undefined;

/**
 * Whether libz can be loaded here (a host without it serves no ZRLE).
 *
 * @returns true when libz.so.1 opened
 * @example
 * ```ts
 * import { zlibAvailable } from "./zlib.ts";
 * console.log(zlibAvailable());
 * ```
 */
export function zlibAvailable(): boolean {
  if (available === undefined) {
    try {
      z();
      available = true;
    } catch {
      available = false;
    }
  }
  return available;
}

// struct z_stream on x86-64 (zlib.h).
const Z_STREAM_SIZE = 112;
const NEXT_IN = 0;
const AVAIL_IN = 8;
const NEXT_OUT = 24;
const AVAIL_OUT = 32;

/** Flush modes. */
export const Z_NO_FLUSH = 0;
/** Flush to a byte boundary; the receiver can decode everything so far. */
export const Z_SYNC_FLUSH = 2;
const Z_FINISH = 4;
const Z_OK = 0;
const Z_STREAM_END = 1;
const Z_BUF_ERROR = -5;

class ZStream {
  protected strm = new Uint8Array(new ArrayBuffer(Z_STREAM_SIZE));
  protected view = new DataView(this.strm.buffer);
  protected closed = false;

  protected setIn(buf: Uint8Array, len: number): void {
    this.view.setBigUint64(NEXT_IN, len > 0 ? viewAddress(buf) : 0n, true);
    this.view.setUint32(AVAIL_IN, len, true);
  }

  protected setOut(buf: Uint8Array, off: number, len: number): void {
    this.view.setBigUint64(NEXT_OUT, viewAddress(buf) + BigInt(off), true);
    this.view.setUint32(AVAIL_OUT, len, true);
  }

  protected get availIn(): number {
    return this.view.getUint32(AVAIL_IN, true);
  }

  protected get availOut(): number {
    return this.view.getUint32(AVAIL_OUT, true);
  }
}

/**
 * A deflate stream that stays open across messages.
 *
 * @example
 * ```ts
 * import { Deflater, Inflater } from "./zlib.ts";
 * const d = new Deflater(6);
 * const packed = d.deflate(new Uint8Array(1000).fill(7));
 * const out = new Inflater().inflate(packed, 1000);
 * console.log(out.length); // 1000
 * d.close();
 * ```
 */
export class Deflater extends ZStream {
  #out = new Uint8Array(64 * 1024);

  /** @param level compression level 0..9 (default 6; RFB servers use 1..6) */
  constructor(level = 6) {
    super();
    const lz = z();
    const r = lz.deflateInit_(this.strm, level, version!, Z_STREAM_SIZE);
    if (r !== Z_OK) throw new Error(`deflateInit failed: ${r}`);
  }

  /**
   * Compresses data and sync-flushes.
   *
   * @param data the input (only `len` bytes of it when given)
   * @param len bytes of data to take
   * @returns the compressed bytes so far (a view of an internal buffer: copy or use before the next call)
   */
  deflate(data: Uint8Array, len: number = data.length): Uint8Array {
    if (this.closed) throw new Error("Deflater is closed");
    const lz = z();
    const bound = Number(lz.deflateBound(this.strm, BigInt(len))) + 64;
    if (this.#out.length < bound) this.#out = new Uint8Array(bound);
    this.setIn(data, len);
    let produced = 0;
    for (;;) {
      this.setOut(this.#out, produced, this.#out.length - produced);
      const r = lz.deflate(this.strm, Z_SYNC_FLUSH);
      produced = this.#out.length - this.availOut;
      if (r !== Z_OK && r !== Z_BUF_ERROR) throw new Error(`deflate failed: ${r}`);
      if (this.availOut > 0 && this.availIn === 0) break;
      const bigger = new Uint8Array(this.#out.length * 2);
      bigger.set(this.#out.subarray(0, produced));
      this.#out = bigger;
    }
    return this.#out.subarray(0, produced);
  }

  /** Frees libz's state. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    z().deflateEnd(this.strm);
  }
}

/**
 * An inflate stream that stays open across messages (the client side, for tests).
 *
 * @example
 * ```ts
 * import { Inflater } from "./zlib.ts";
 * const inf = new Inflater();
 * inf.close();
 * ```
 */
export class Inflater extends ZStream {
  constructor() {
    super();
    const r = z().inflateInit_(this.strm, version!, Z_STREAM_SIZE);
    if (r !== Z_OK) throw new Error(`inflateInit failed: ${r}`);
  }

  /**
   * Decompresses a chunk that ends on a flush point.
   *
   * @param data compressed bytes
   * @param expect how many bytes the chunk must yield (any number when absent)
   * @returns the decompressed bytes
   * @throws Error when the data is corrupt or yields a different length
   */
  inflate(data: Uint8Array, expect?: number): Uint8Array {
    let out = new Uint8Array((expect ?? data.length * 4 + 1024) + 1);
    let got = 0;
    this.setIn(data, data.length);
    for (;;) {
      this.setOut(out, got, out.length - got);
      const r = z().inflate(this.strm, Z_SYNC_FLUSH);
      if (r !== Z_OK && r !== Z_BUF_ERROR && r !== Z_STREAM_END) {
        throw new Error(`inflate failed: ${r}`);
      }
      got = out.length - this.availOut;
      if (expect !== undefined || this.availOut > 0 || this.availIn === 0 && r === Z_BUF_ERROR) {
        break;
      }
      const bigger = new Uint8Array(out.length * 2);
      bigger.set(out.subarray(0, got));
      out = bigger;
    }
    if ((expect !== undefined && got !== expect) || this.availIn !== 0) {
      throw new Error(`inflate yielded ${got} bytes (expected ${expect}), ${this.availIn} left`);
    }
    return out.subarray(0, got);
  }

  /** Frees libz's state. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    z().inflateEnd(this.strm);
  }
}

/** windowBits for inflateInit2: a 32 KiB window, the gzip wrapper (+16). */
const GZIP_WINDOW_BITS = 15 + 16;

/**
 * Inflates one whole gzip member (a kernel's gzip payload) into `output`,
 * which must be exactly its size: one `inflate(Z_FINISH)` over both
 * buffers, which libz never reads or writes past, on Deno's blocking pool
 * (both buffers must stay untouched until it settles).
 *
 * @param input the gzip member, nothing after it
 * @param output where it goes; its length is the size expected
 * @returns when `output` holds the whole member
 * @throws Error naming what is wrong: corrupt data, or another size
 * @example
 * ```ts
 * import { gunzipInto } from "./zlib.ts";
 * const out = new Uint8Array(0);
 * await gunzipInto(new Uint8Array([1, 2]), out).catch((e) => console.log(e.message));
 * ```
 */
export async function gunzipInto(input: Uint8Array, output: Uint8Array): Promise<void> {
  const problem = await new GzipMember().inflateInto(input, output);
  if (problem !== undefined) throw new Error(`gzip: ${problem}`);
}

/** A one-shot inflate stream with the gzip wrapper, ended after its one call. */
class GzipMember extends ZStream {
  /** @returns what went wrong, or undefined when `output` holds the whole member */
  async inflateInto(input: Uint8Array, output: Uint8Array): Promise<string | undefined> {
    const lz = z();
    if (lz.inflateInit2_(this.strm, GZIP_WINDOW_BITS, version!, Z_STREAM_SIZE) !== Z_OK) {
      return "inflateInit2 failed";
    }
    try {
      this.setIn(input, input.length);
      this.setOut(output, 0, output.length);
      const r = await lz.inflate_nb(this.strm, Z_FINISH);
      const got = output.length - this.availOut;
      if (r !== Z_STREAM_END) {
        return r === Z_OK || r === Z_BUF_ERROR
          ? `more than ${output.length} bytes, or cut short (${got} written)`
          : `corrupt data (inflate ${r})`;
      }
      if (got !== output.length) return `${got} bytes instead of ${output.length}`;
      if (this.availIn !== 0) return `${this.availIn} bytes after the gzip member`;
      return undefined;
    } finally {
      lz.inflateEnd(this.strm);
    }
  }
}

/**
 * A whole zlib stream (RFC 1950) of `data`, in one call (`compress2`): what
 * a PNG's image data is.
 *
 * @param data the bytes
 * @param level 0-9
 * @returns the stream
 * @throws Error when libz fails
 * @example
 * ```ts ignore
 * const idat = zlibCompress(rows);
 * ```
 */
export function zlibCompress(data: Uint8Array, level = 6): Uint8Array<ArrayBuffer> {
  const lz = z();
  const out = new Uint8Array(Number(lz.compressBound(BigInt(data.length))));
  const outLen = new BigUint64Array([BigInt(out.length)]);
  const r = lz.compress2(out, outLen, data, BigInt(data.length), level);
  if (r !== Z_OK) throw new Error(`compress2 failed: ${r}`);
  return out.slice(0, Number(outLen[0]));
}
