/**
 * io_uring's side of `fallocate` requests: their lengths (the result on
 * success, where the kernel reports 0) and, with AIO_FALLOC_ZERO_FALLBACK,
 * the steps QEMU's handle_aiocb_write_zeroes takes, each one SQE: the asked
 * mode, FALLOC_FL_ZERO_RANGE, then writes of a zero buffer until done.
 *
 * @module
 */
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE } from "./types.ts";
import { unsupported, ZERO_CHUNK, zeroBuffer } from "./_fallocate.ts";

const Z_NONE = 0, Z_ASKED = 1, Z_RANGE = 2, Z_WRITE = 3;
const IORING_OP_FALLOCATE = 17;
const IORING_OP_WRITE = 23;

/** Per-slot fallocate state of one ring. */
export class UringFallocate {
  readonly #len: Float64Array;
  readonly #stage: Uint8Array;
  readonly #fd: Int32Array;
  readonly #off: Float64Array;
  readonly #done: Float64Array;
  /** The next SQE to send when {@link UringFallocate.complete} returns null. */
  readonly next = { opcode: 0, fd: 0, offset: 0, addr: 0n, len: 0 };

  /** @param entries slots of the ring */
  constructor(entries: number) {
    this.#len = new Float64Array(entries).fill(-1);
    this.#stage = new Uint8Array(entries);
    this.#fd = new Int32Array(entries);
    this.#off = new Float64Array(entries);
    this.#done = new Float64Array(entries);
  }

  /** Records a fallocate submitted in `slot`. */
  begin(slot: number, fd: number, offset: number, len: number, fallback: boolean): void {
    this.#len[slot] = len;
    this.#stage[slot] = fallback ? Z_ASKED : Z_NONE;
    this.#fd[slot] = fd;
    this.#off[slot] = offset;
    this.#done[slot] = 0;
  }

  /**
   * A completion for `slot`: the request's final result, or null when
   * another step must go out for the same slot (described in `next`).
   */
  complete(slot: number, res: number): number | null {
    const total = this.#len[slot];
    const stage = this.#stage[slot];
    if (total < 0) return res; // not a fallocate
    let next = stage;
    if (stage === Z_NONE) return this.#end(slot, res === 0 ? total : res);
    if (stage === Z_WRITE) {
      if (res <= 0) return this.#end(slot, res < 0 ? res : -5);
      this.#done[slot] += res;
    } else {
      if (res >= 0) return this.#end(slot, total);
      if (!unsupported(-res)) return this.#end(slot, res);
      next = stage === Z_ASKED ? Z_RANGE : Z_WRITE;
    }
    this.#stage[slot] = next;
    const n = this.next;
    n.fd = this.#fd[slot];
    if (next === Z_RANGE) {
      n.opcode = IORING_OP_FALLOCATE;
      n.offset = this.#off[slot];
      n.addr = BigInt(total);
      n.len = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
      return null;
    }
    const done = this.#done[slot];
    if (done >= total) return this.#end(slot, total);
    n.opcode = IORING_OP_WRITE;
    n.offset = this.#off[slot] + done;
    n.addr = BigInt(Deno.UnsafePointer.value(zeroBuffer()));
    n.len = Math.min(ZERO_CHUNK, total - done);
    return null;
  }

  #end(slot: number, res: number): number {
    this.#len[slot] = -1;
    this.#stage[slot] = Z_NONE;
    return res;
  }
}
