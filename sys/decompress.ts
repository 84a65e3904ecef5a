/**
 * One-shot decompression of a whole buffer whose decompressed size is known
 * (a kernel's payload: the bzImage says how big it unpacks), through the
 * system's own libraries: liblzma for xz (`lzma_stream_buffer_decode`) and
 * libzstd for zstd (`ZSTD_decompress`). Each library is opened on first use;
 * a host without it reports the format as unavailable and the caller does
 * without (the guest decompresses its kernel itself).
 *
 * @module
 */

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
  },
} as const satisfies Deno.ForeignLibraryInterface;

const ZSTD = {
  ZSTD_decompress: { parameters: ["buffer", "usize", "buffer", "usize"], result: "usize" },
  ZSTD_isError: { parameters: ["usize"], result: "u32" },
  ZSTD_getErrorName: { parameters: ["usize"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** Compression formats this module can undo. */
export type DecompressFormat = "xz" | "zstd";

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
  return (format === "xz" ? openLzma() : openZstd()) !== null;
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
 * Decompresses `input` (one xz stream, or zstd frames) into `output`, which
 * must be exactly the decompressed size.
 *
 * @param format the input's format
 * @param input the compressed bytes (nothing after them)
 * @param output where the bytes go; its length is the size expected
 * @throws {DecompressError} on corrupt input or another size than expected
 * @throws {Error} when the format's library is missing ({@link decompressAvailable})
 * @example
 * ```ts ignore
 * const out = new Uint8Array(size);
 * decompressInto("xz", payload, out);
 * ```
 */
export function decompressInto(
  format: DecompressFormat,
  input: Uint8Array,
  output: Uint8Array,
): void {
  if (format === "xz") {
    const lib = openLzma();
    if (lib === null) throw new Error("liblzma.so.5 is not available");
    const memlimit = new BigUint64Array([0xffff_ffff_ffff_ffffn]);
    const inPos = new BigUint64Array(1);
    const outPos = new BigUint64Array(1);
    const ret = lib.lzma_stream_buffer_decode(
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
  const lib = openZstd();
  if (lib === null) throw new Error("libzstd.so.1 is not available");
  const n = lib.ZSTD_decompress(output, BigInt(output.length), input, BigInt(input.length));
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
