/**
 * What a request means before an engine encodes it: the pool's operation
 * code for each op, the host address of a JS buffer, and the checks every
 * engine applies to segment lengths. The thread pool and io_uring share
 * these, so a malformed request is refused the same way by both.
 *
 * @module
 */
import {
  OP_FALLOCATE,
  OP_FDATASYNC,
  OP_FSYNC,
  OP_PREAD,
  OP_PREADV,
  OP_PWRITE,
  OP_PWRITEV,
} from "./_layout.ts";
import type { AioRequest } from "./types.ts";

/**
 * The pool's code for an operation.
 *
 * @param op the request's op
 * @returns its OP_* code
 * @throws {RangeError} for an unknown op
 * @example
 * ```ts
 * import { opCode } from "./request.ts";
 * console.log(opCode("preadv"));
 * ```
 */
export function opCode(op: string): number {
  switch (op) {
    case "pread":
      return OP_PREAD;
    case "pwrite":
      return OP_PWRITE;
    case "preadv":
      return OP_PREADV;
    case "pwritev":
      return OP_PWRITEV;
    case "fsync":
      return OP_FSYNC;
    case "fdatasync":
      return OP_FDATASYNC;
    case "fallocate":
      return OP_FALLOCATE;
    default:
      throw new RangeError(`Unknown aio operation ${op}`);
  }
}

/**
 * The address of a JS buffer's first byte.
 *
 * @param buf the buffer (kept alive by the caller while the kernel uses it)
 * @returns its host address (0n when empty)
 * @example
 * ```ts
 * import { bufferAddress } from "./request.ts";
 * console.log(bufferAddress(new Uint8Array(8)) !== 0n);
 * ```
 */
export function bufferAddress(buf: Uint8Array): bigint {
  if (buf.byteLength === 0) return 0n;
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * Checks a segment length.
 *
 * @param len bytes
 * @returns len
 * @throws {RangeError} when it is not a non-negative safe integer
 * @example
 * ```ts
 * import { checkLen } from "./request.ts";
 * console.log(checkLen(4096));
 * ```
 */
export function checkLen(len: number): number {
  if (!Number.isSafeInteger(len) || len < 0) throw new RangeError(`Invalid segment length ${len}`);
  return len;
}

/** Where {@link singleSegment} puts a pread/pwrite's memory (a caller-owned scratch object). */
export interface OneSegment {
  /** Host address. */
  addr: bigint;
  /** Bytes. */
  len: number;
  /** The JS buffer to keep alive until completion, if the memory is one. */
  keep: Uint8Array | null;
}

/**
 * The memory of a `pread`/`pwrite`: its `buf`, or exactly one `iov`
 * segment. Writes into `out` (no allocation per request).
 *
 * @param req the request
 * @param out receives address, length and the buffer to keep alive
 * @throws {RangeError} when the request has neither, or a bad length
 * @example
 * ```ts
 * import { type OneSegment, singleSegment } from "./request.ts";
 * const out: OneSegment = { addr: 0n, len: 0, keep: null };
 * singleSegment({ op: "pread", fd: 0, buf: new Uint8Array(512) }, out);
 * console.log(out.len); // 512
 * ```
 */
export function singleSegment(req: AioRequest, out: OneSegment): void {
  if (req.buf) {
    out.addr = bufferAddress(req.buf);
    out.len = req.buf.byteLength;
    out.keep = req.buf;
  } else if (req.iov && req.iov.length === 1) {
    out.addr = req.iov[0].addr;
    out.len = checkLen(req.iov[0].len);
    out.keep = null;
  } else {
    throw new RangeError(`${req.op} needs buf or exactly one iov segment`);
  }
}
