/**
 * virtio-blk DISCARD and WRITE_ZEROES (virtio spec 5.2.6): the ranges of one
 * request, validated up front and then worked through as aio `fallocate`
 * pieces of bounded size, one in flight at a time, so that no request
 * blocks the loop or holds an aio thread for long.
 *
 * @module
 */
import type { GuestMemory } from "../../memory/guest_memory.ts";
import {
  AIO_FALLOC_ZERO_FALLBACK,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
} from "../../aio/types.ts";
import {
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
} from "./constants.ts";
import type { DescriptorChain } from "./queue.ts";

/** Most ranges in one discard / write-zeroes request. */
export const VIRTIO_BLK_MAX_DISCARD_SEG = 32;
/** Most sectors one discard / write-zeroes range may cover (2 GiB). */
export const VIRTIO_BLK_MAX_DISCARD_SECTORS = 0x40_0000;
/** Largest piece of a range one aio request covers (16 MiB). */
export const VIRTIO_BLK_DISCARD_PIECE = 16 << 20;

const HEADER_BYTES = 16;
const SEGMENT_BYTES = 16;
const EOPNOTSUPP = 95;
const EINVAL = 22;
const ENOSYS = 38;

/**
 * The ranges of one request and how far it got. Built once per descriptor
 * head and reused: parsing and advancing allocate nothing.
 *
 * @example
 * ```ts
 * import { DiscardRanges } from "./block_discard.ts";
 * const g = new DiscardRanges();
 * console.log(g.done); // true: no ranges
 * ```
 */
export class DiscardRanges {
  readonly #offset = new Float64Array(VIRTIO_BLK_MAX_DISCARD_SEG);
  readonly #len = new Float64Array(VIRTIO_BLK_MAX_DISCARD_SEG);
  readonly #mode = new Int32Array(VIRTIO_BLK_MAX_DISCARD_SEG);
  readonly #buf = new Uint8Array(SEGMENT_BYTES);
  readonly #view = new DataView(this.#buf.buffer);
  #count = 0;
  #index = 0;
  #doneInRange = 0;
  /** Whether this is a DISCARD (failures for lack of support are fine). */
  isDiscard = false;

  /** Whether every range has been done. */
  get done(): boolean {
    return this.#index >= this.#count;
  }

  /** File offset of the next piece. */
  get pieceOffset(): number {
    return this.#offset[this.#index] + this.#doneInRange;
  }

  /** fallocate mode of the next piece. */
  get pieceMode(): number {
    return this.#mode[this.#index];
  }

  /**
   * Length of the next piece.
   *
   * @param max the largest piece
   * @returns bytes
   */
  pieceLength(max: number): number {
    return Math.min(max, this.#len[this.#index] - this.#doneInRange);
  }

  /**
   * Records a finished piece.
   *
   * @param bytes its length
   * @returns true while pieces remain
   */
  advance(bytes: number): boolean {
    this.#doneInRange += bytes;
    if (this.#doneInRange >= this.#len[this.#index]) {
      this.#index++;
      this.#doneInRange = 0;
    }
    return !this.done;
  }

  /**
   * Whether a DISCARD failure only means the file system cannot punch holes.
   *
   * @param e errno
   * @returns true if so
   */
  discardUnsupported(e: number): boolean {
    return e === EOPNOTSUPP || e === EINVAL || e === ENOSYS;
  }

  /** @internal used by {@link parseDiscardRanges} */
  reset(isDiscard: boolean): void {
    this.#count = 0;
    this.#index = 0;
    this.#doneInRange = 0;
    this.isDiscard = isDiscard;
  }

  /** @internal used by {@link parseDiscardRanges} */
  add(offset: number, len: number, mode: number): void {
    this.#offset[this.#count] = offset;
    this.#len[this.#count] = len;
    this.#mode[this.#count] = mode;
    this.#count++;
  }

  /** @internal the segment scratch buffer */
  get scratch(): Uint8Array {
    return this.#buf;
  }

  /** @internal a view over {@link DiscardRanges.scratch} */
  get scratchView(): DataView {
    return this.#view;
  }
}

/**
 * Validates the ranges of a DISCARD / WRITE_ZEROES chain into `out`, as
 * QEMU's virtio_blk_handle_discard_write_zeroes does: every range checked
 * before any is touched, so a bad one fails the request with nothing done.
 *
 * @param chain the popped chain (16-byte header first)
 * @param mem guest RAM
 * @param type VIRTIO_BLK_T_DISCARD or VIRTIO_BLK_T_WRITE_ZEROES
 * @param diskSize the disk's size in bytes
 * @param out where the ranges go (reset first)
 * @returns VIRTIO_BLK_S_OK, or the status to answer at once
 * @example
 * ```ts ignore
 * const status = parseDiscardRanges(chain, mem, VIRTIO_BLK_T_DISCARD, size, r.ranges);
 * ```
 */
export function parseDiscardRanges(
  chain: DescriptorChain,
  mem: GuestMemory,
  type: number,
  diskSize: number,
  out: DiscardRanges,
): number {
  const discard = type === VIRTIO_BLK_T_DISCARD;
  out.reset(discard);
  const bytes = chain.readableBytes - HEADER_BYTES;
  const n = bytes / SEGMENT_BYTES;
  if (bytes === 0 || bytes % SEGMENT_BYTES !== 0 || n > VIRTIO_BLK_MAX_DISCARD_SEG) {
    return VIRTIO_BLK_S_IOERR;
  }
  const seg = out.scratch;
  const view = out.scratchView;
  for (let i = 0; i < n; i++) {
    chain.gather(mem, HEADER_BYTES + SEGMENT_BYTES * i, seg);
    const sectorHi = view.getUint32(4, true);
    const sector = sectorHi * 0x1_0000_0000 + view.getUint32(0, true);
    const count = view.getUint32(8, true);
    const flags = view.getUint32(12, true);
    const unmap = (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0;
    if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) return VIRTIO_BLK_S_UNSUPP;
    if (discard && unmap) return VIRTIO_BLK_S_UNSUPP;
    if (count > VIRTIO_BLK_MAX_DISCARD_SECTORS || sectorHi >= 0x20_0000) {
      return VIRTIO_BLK_S_IOERR;
    }
    const offset = sector * 512;
    const len = count * 512;
    if (offset + len > diskSize) return VIRTIO_BLK_S_IOERR;
    if (len === 0) continue;
    const mode = discard
      ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
      : (unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) | FALLOC_FL_KEEP_SIZE |
        AIO_FALLOC_ZERO_FALLBACK;
    out.add(offset, len, mode);
  }
  return VIRTIO_BLK_S_OK;
}
