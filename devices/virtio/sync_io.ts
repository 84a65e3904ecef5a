/**
 * A synchronous stand-in for an aio backend: runs preadv/pwritev/fdatasync/fallocate
 * on the calling thread and calls back before `submit` returns. Used by
 * tests and as the baseline in the benchmark; the VMM uses aio/ (thread pool
 * or io_uring) so that a slow disk never stalls the loop.
 *
 * @module
 */
import { libc } from "../../sys/libc.ts";
import { EINTR, errno } from "../../sys/errno.ts";
import type { AioBackend, AioCallback, AioRequest } from "../../aio/types.ts";
import { IOV_MAX } from "../../aio/types.ts";
import { runFallocate } from "../../aio/_fallocate.ts";

/** The part of {@link AioBackend} a block device needs. */
export type BlockAio = Pick<AioBackend, "submit">;

/**
 * Runs each request inline. Segments go straight from guest RAM to the file
 * through an iovec array built once.
 *
 * @example
 * ```ts
 * import { SyncAio } from "./sync_io.ts";
 * const aio = new SyncAio();
 * let result = 1;
 * aio.submit({ op: "fdatasync", fd: -1 }, (r) => (result = r));
 * console.log(result); // -9 (EBADF)
 * ```
 */
export class SyncAio implements BlockAio {
  readonly #iovec = new BigUint64Array(2 * IOV_MAX);
  readonly #iovecPtr = Deno.UnsafePointer.of(this.#iovec);
  #handles = 0;

  /**
   * Runs a request now; `cb` is called before this returns.
   *
   * @param req the request
   * @param cb gets bytes transferred or -errno
   * @returns a handle (never cancellable: the work is done)
   */
  submit(req: AioRequest, cb: AioCallback): number {
    cb(this.#run(req));
    return ++this.#handles;
  }

  #run(req: AioRequest): number {
    for (;;) {
      let r: number;
      switch (req.op) {
        case "fdatasync":
          r = libc.fdatasync(req.fd);
          break;
        case "fsync":
          r = libc.fsync(req.fd);
          break;
        case "preadv":
        case "pwritev": {
          if (req.iovec) {
            const v = req.iovec;
            if (v.count < 1 || v.count > IOV_MAX) throw new RangeError("Invalid segment count");
            const p = Deno.UnsafePointer.create(v.address);
            const off = BigInt(req.offset ?? 0);
            r = Number(
              req.op === "preadv"
                ? libc.preadv(req.fd, p, v.count, off)
                : libc.pwritev(req.fd, p, v.count, off),
            );
            break;
          }
          const iov = req.iov ?? [];
          if (iov.length > IOV_MAX) throw new RangeError("Too many segments");
          for (let i = 0; i < iov.length; i++) {
            this.#iovec[2 * i] = iov[i].addr;
            this.#iovec[2 * i + 1] = BigInt(iov[i].len);
          }
          const off = BigInt(req.offset ?? 0);
          r = Number(
            req.op === "preadv"
              ? libc.preadv(req.fd, this.#iovecPtr, iov.length, off)
              : libc.pwritev(req.fd, this.#iovecPtr, iov.length, off),
          );
          break;
        }
        case "fallocate":
          return runFallocate(req.fd, req.mode ?? 0, req.offset ?? 0, req.len ?? 0);
        default:
          throw new RangeError(`Unsupported operation ${req.op}`);
      }
      if (r >= 0) return r;
      const e = errno();
      if (e !== EINTR) return -e;
    }
  }
}
