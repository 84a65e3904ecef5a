/**
 * One-shot decompression of a whole buffer whose decompressed size is known
 * (a kernel's payload: the bzImage says how big it unpacks), through the
 * system's own libraries: liblzma for xz (`lzma_stream_buffer_decode`),
 * libzstd for zstd (`ZSTD_decompress`), libz for gzip (`inflate`,
 * sys/zlib.ts) and liblz4 for the LZ4 legacy frames the kernel's build makes
 * (`lz4 -l`; each block `LZ4_decompress_safe`, the framing read here as
 * lib/decompress_unlz4.c does). Each library is opened on first use; a host
 * without it reports the format as unavailable and the caller does without
 * (the guest decompresses its kernel itself).
 *
 * The library calls run on Deno's blocking pool (`nonblocking` symbols): a
 * Debian kernel's xz payload takes ~0.75 s natively and seconds in the
 * nested KVM host, which the calling thread's event loop (the main loop,
 * with other machines' devices on it) must not sit out, and which the
 * machine's start-up overlaps instead of waiting for.
 *
 * @module
 */

import { gunzipInto, zlibAvailable } from "./zlib.ts";

const LZMA = {
  lzma_stream_buffer_decode: {
    // memlimit*, flags, allocator*, in, in_pos*, in_size, out, out_pos*, out_size
    parameters: [
      "buffer",
      "u32",
      "pointer",
      "buffer",
      "buffer",
      "usize",
      "buffer",
      "buffer",
      "usize",
    ],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

const ZSTD = {
  ZSTD_decompress: {
    parameters: ["buffer", "usize", "buffer", "usize"],
    result: "usize",
    nonblocking: true,
  },
  ZSTD_isError: { parameters: ["usize"], result: "u32" },
  ZSTD_getErrorName: { parameters: ["usize"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

const LZ4 = {
  // src, dst, compressedSize, dstCapacity -> bytes written, or < 0 for bad input
  LZ4_decompress_safe: {
    parameters: ["buffer", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** Compression formats this module can undo. */
export const DECOMPRESS_FORMATS = ["xz", "zstd", "lz4", "gzip"] as const;
/** One of {@link DECOMPRESS_FORMATS}. */
export type DecompressFormat = typeof DECOMPRESS_FORMATS[number];

/** A library opened on first use; null where the host lacks it. */
function opener<S extends Deno.ForeignLibraryInterface>(
  name: string,
  symbols: S,
): () => Deno.DynamicLibrary<S>["symbols"] | null {
  let lib: Deno.DynamicLibrary<S>["symbols"] | null | undefined;
  return () => {
    if (lib === undefined) {
      try {
        lib = Deno.dlopen(name, symbols).symbols;
      } catch {
        lib = null;
      }
    }
    return lib;
  };
}

const openLzma = opener("liblzma.so.5", LZMA);
const openZstd = opener("libzstd.so.1", ZSTD);
const openLz4 = opener("liblz4.so.1", LZ4);

/**
 * Whether this host has the library for `format`.
 *
 * @param format a compression format
 * @returns true when its library opened
 * @example
 * ```ts
 * import { decompressAvailable } from "./decompress.ts";
 * console.log(typeof decompressAvailable("xz")); // boolean
 * ```
 */
export function decompressAvailable(format: DecompressFormat): boolean {
  if (format === "gzip") return zlibAvailable();
  return (format === "xz" ? openLzma() : format === "zstd" ? openZstd() : openLz4()) !== null;
}

/** A failed decompression: corrupt input, or not the size it claimed. */
export class DecompressError extends Error {
  override name = "DecompressError";
}

/** liblzma's lzma_ret names, for messages. */
const LZMA_RET = [
  "LZMA_OK",
  "LZMA_STREAM_END",
  "LZMA_NO_CHECK",
  "LZMA_UNSUPPORTED_CHECK",
  "LZMA_GET_CHECK",
  "LZMA_MEM_ERROR",
  "LZMA_MEMLIMIT_ERROR",
  "LZMA_FORMAT_ERROR",
  "LZMA_OPTIONS_ERROR",
  "LZMA_DATA_ERROR",
  "LZMA_BUF_ERROR",
  "LZMA_PROG_ERROR",
];

/**
 * Decompresses `input` (one xz stream, zstd frames, LZ4 legacy frames or one
 * gzip member) into `output`, which must be exactly the decompressed size,
 * on Deno's blocking pool. Both buffers must stay untouched until it settles.
 *
 * @param format the input's format
 * @param input the compressed bytes (nothing after them)
 * @param output where the bytes go; its length is the size expected
 * @returns when `output` holds every byte
 * @throws {DecompressError} on corrupt input or another size than expected
 * @throws {Error} when the format's library is missing ({@link decompressAvailable})
 * @example
 * ```ts ignore
 * const out = new Uint8Array(size);
 * await decompressInto("xz", payload, out);
 * ```
 */
export async function decompressInto(
  format: DecompressFormat,
  input: Uint8Array,
  output: Uint8Array,
): Promise<void> {
  if (format === "xz") {
    const lib = openLzma();
    if (lib === null) throw new Error("liblzma.so.5 is not available");
    // Off V8's heap (an ArrayBuffer's store never moves): the pool thread writes them.
    const memlimit = new BigUint64Array(new ArrayBuffer(8));
    memlimit[0] = 0xffff_ffff_ffff_ffffn;
    const inPos = new BigUint64Array(new ArrayBuffer(8));
    const outPos = new BigUint64Array(new ArrayBuffer(8));
    const ret = await lib.lzma_stream_buffer_decode(
      new Uint8Array(memlimit.buffer),
      0,
      null,
      input,
      new Uint8Array(inPos.buffer),
      BigInt(input.length),
      output,
      new Uint8Array(outPos.buffer),
      BigInt(output.length),
    );
    if (ret !== 0) throw new DecompressError(`xz: ${LZMA_RET[ret] ?? `error ${ret}`}`);
    if (Number(outPos[0]) !== output.length) {
      throw new DecompressError(`xz: ${outPos[0]} bytes instead of ${output.length}`);
    }
    return;
  }
  if (format === "lz4") return await lz4LegacyInto(input, output);
  if (format === "gzip") {
    if (!zlibAvailable()) throw new Error("libz.so.1 is not available");
    try {
      return await gunzipInto(input, output);
    } catch (e) {
      throw new DecompressError((e as Error).message);
    }
  }
  const lib = openZstd();
  if (lib === null) throw new Error("libzstd.so.1 is not available");
  const n = await lib.ZSTD_decompress(output, BigInt(output.length), input, BigInt(input.length));
  if (lib.ZSTD_isError(n) !== 0) {
    const p = lib.ZSTD_getErrorName(n);
    throw new DecompressError(
      `zstd: ${p === null ? "error" : Deno.UnsafePointerView.getCString(p)}`,
    );
  }
  if (Number(n) !== output.length) {
    throw new DecompressError(`zstd: ${n} bytes instead of ${output.length}`);
  }
}

/** The legacy frame's magic, which may also start another frame after a block. */
const LZ4_LEGACY_MAGIC = 0x184c_2102;
/** What each legacy block unpacks to, the last one less (lz4's LEGACY_BLOCKSIZE). */
const LZ4_LEGACY_BLOCK = 8 << 20;
/** LZ4_compressBound(8 MiB): no valid block is longer. */
const LZ4_LEGACY_BOUND = LZ4_LEGACY_BLOCK + Math.floor(LZ4_LEGACY_BLOCK / 255) + 16;

/**
 * LZ4 legacy frames: the magic, then blocks of a u32 compressed length and
 * the block, each unpacking to 8 MiB but the last; the magic again starts
 * another frame. Every length is checked against what is left on both
 * sides before liblz4 sees it (it never writes past the capacity given).
 */
async function lz4LegacyInto(input: Uint8Array, output: Uint8Array): Promise<void> {
  const lib = openLz4();
  if (lib === null) throw new Error("liblz4.so.1 is not available");
  const v = new DataView(input.buffer, input.byteOffset, input.byteLength);
  if (input.length < 4 || v.getUint32(0, true) !== LZ4_LEGACY_MAGIC) {
    throw new DecompressError("lz4: not a legacy frame (lz4 -l)");
  }
  let inPos = 4, outPos = 0;
  while (inPos < input.length) {
    if (input.length - inPos < 4) throw new DecompressError("lz4: truncated block length");
    const n = v.getUint32(inPos, true);
    inPos += 4;
    if (n === LZ4_LEGACY_MAGIC) continue;
    if (n === 0 || n > LZ4_LEGACY_BOUND || n > input.length - inPos) {
      throw new DecompressError(`lz4: block of ${n} bytes at ${inPos - 4}`);
    }
    const room = Math.min(LZ4_LEGACY_BLOCK, output.length - outPos);
    if (room === 0) throw new DecompressError(`lz4: more than ${output.length} bytes`);
    const got = await lib.LZ4_decompress_safe(
      input.subarray(inPos, inPos + n),
      output.subarray(outPos, outPos + room),
      n,
      room,
    );
    if (got < 0) throw new DecompressError(`lz4: corrupt block at ${inPos - 4}`);
    inPos += n;
    outPos += got;
  }
  if (outPos !== output.length) {
    throw new DecompressError(`lz4: ${outPos} bytes instead of ${output.length}`);
  }
}
