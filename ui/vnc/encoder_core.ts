/**
 * The VNC encoding job, independent of the thread it runs on (QEMU's
 * ui/vnc-jobs.c worker body): find what changed in the framebuffer since the
 * last look, keep each client's accumulated dirty tiles, and turn them into
 * ready-to-send FramebufferUpdate messages in the client's pixel format and
 * encoding.
 *
 * Change detection is page comparison against a shadow copy, per 64x64 tile
 * (ZRLE's tile): only changed tiles are copied into the shadow, and updates
 * are encoded from the shadow, so an update never tears and the live
 * framebuffer (guest memory) is only ever read. A client that has not asked
 * for an update yet just accumulates dirt: updates for a slow client are
 * coalesced, never queued.
 *
 * A vertical scroll of the whole width (fbcon's) is found by matching row
 * hashes between the shadow and the new frame, and sent as one CopyRect to
 * clients that are up to date and accept CopyRect.
 *
 * @module
 */
import {
  ByteWriter,
  encodeCopyRect,
  encodeRaw,
  encodeZrle,
  ENCODING_COPYRECT,
  ENCODING_DESKTOP_SIZE,
  ENCODING_RAW,
  ENCODING_ZRLE,
  type PixelSource,
  type Rect,
  rectHeader,
} from "./encodings.ts";
import { NATIVE_FORMAT, PixelConverter, type PixelFormat } from "./pixel_format.ts";
import { Deflater, zlibAvailable } from "../../sys/zlib.ts";

/** Tile edge for change detection. */
export const TILE = 64;

/**
 * Shared geometry words: [generation, width, height, stride in bytes, byte
 * offset of the first pixel] (a mode-setting display scans out from
 * anywhere in its memory; a 4-word geometry means offset 0).
 */
export const GEOMETRY_WORDS = 5;

/** The framebuffer as the encoder sees it: memory plus shared geometry. */
export interface FramebufferView {
  /** The framebuffer bytes (guest memory or a test buffer); x8r8g8b8, little-endian. */
  memory: ArrayBuffer | SharedArrayBuffer;
  /** Int32Array over GEOMETRY_WORDS shared words. */
  geometry: Int32Array;
}

interface ClientState {
  conv: PixelConverter;
  encoding: number;
  copyRect: boolean;
  desktopSize: boolean;
  dirty: Uint8Array;
  /** Dirty tiles since the last update, none of which the client has seen. */
  clean: boolean;
  requested: boolean;
  resized: boolean;
  deflater: Deflater | null;
  scroll: { dy: number; y0: number; y1: number } | null;
}

/** What {@link EncoderCore.refresh} found. */
export interface RefreshResult {
  /** Tiles that changed. */
  changedTiles: number;
  /** Whether the geometry changed. */
  resized: boolean;
}

/**
 * Change detection plus per-client encoding state.
 *
 * @example
 * ```ts
 * import { EncoderCore, GEOMETRY_WORDS } from "./encoder_core.ts";
 * const geometry = new Int32Array(new SharedArrayBuffer(GEOMETRY_WORDS * 4));
 * geometry.set([1, 64, 64, 256]);
 * const core = new EncoderCore({ memory: new SharedArrayBuffer(64 * 256), geometry });
 * core.addClient(1);
 * core.request(1, false, { x: 0, y: 0, w: 64, h: 64 });
 * core.refresh();
 * console.log(core.takeUpdate(1)?.length); // 16 + 64*64*4
 * ```
 */
export class EncoderCore {
  #view: FramebufferView | null;
  #gen = -1;
  #w = 0;
  #h = 0;
  #stride = 0; // words
  #live: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  #shadow = new Uint32Array(0);
  #tilesX = 0;
  #tilesY = 0;
  #rowHash = new Int32Array(0);
  #clients = new Map<number, ClientState>();
  #scratch = new ByteWriter(64 * 1024);

  /** @param view the framebuffer memory and its geometry words */
  constructor(view: FramebufferView) {
    this.#view = view;
    this.#syncGeometry();
  }

  /** Current width in pixels. */
  get width(): number {
    return this.#w;
  }

  /** Current height in pixels. */
  get height(): number {
    return this.#h;
  }

  /**
   * Points the job at other framebuffer memory (a machine rebuilt on
   * reset), or at none: after `setView(null)` returns, the old memory is
   * never read again and may be unmapped. Clients get everything anew.
   *
   * @param view the new framebuffer, or null to detach
   */
  setView(view: FramebufferView | null): void {
    this.#view = view;
    this.#live = new Uint32Array(0);
    this.#gen = -1;
    if (view) this.#syncGeometry();
  }

  #syncGeometry(): boolean {
    if (!this.#view) return false;
    const g = this.#view.geometry;
    const gen = Atomics.load(g, 0);
    if (gen === this.#gen) return false;
    this.#gen = gen;
    const w = Atomics.load(g, 1), h = Atomics.load(g, 2), strideBytes = Atomics.load(g, 3);
    const offset = g.length > 4 ? Atomics.load(g, 4) : 0;
    const mem = this.#view!.memory;
    // The last row needs only its pixels, not a whole stride.
    const words = (strideBytes / 4) * (h - 1) + w;
    if (
      w <= 0 || h <= 0 || w > 8192 || h > 8192 || strideBytes < w * 4 || strideBytes % 4 !== 0 ||
      offset < 0 || offset % 4 !== 0 || offset + words * 4 > mem.byteLength
    ) {
      throw new RangeError(
        `Invalid framebuffer geometry ${w}x${h} stride ${strideBytes} offset ${offset}`,
      );
    }
    this.#w = w;
    this.#h = h;
    this.#stride = strideBytes / 4;
    this.#live = new Uint32Array(mem, offset, words);
    this.#shadow = new Uint32Array(w * h);
    this.#shadow.fill(0xffffffff); // never equal to a pixel with X=0: first look marks all
    this.#tilesX = Math.ceil(w / TILE);
    this.#tilesY = Math.ceil(h / TILE);
    this.#rowHash = new Int32Array(h);
    for (const c of this.#clients.values()) {
      c.dirty = new Uint8Array(this.#tilesX * this.#tilesY).fill(1);
      c.clean = false;
      c.resized = true;
      c.scroll = null;
    }
    return true;
  }

  /**
   * Adds a client with the native format, Raw encoding and all tiles dirty.
   *
   * @param id the server's client id
   */
  addClient(id: number): void {
    this.#clients.set(id, {
      conv: new PixelConverter(NATIVE_FORMAT),
      encoding: ENCODING_RAW,
      copyRect: false,
      desktopSize: false,
      dirty: new Uint8Array(this.#tilesX * this.#tilesY).fill(1),
      clean: false,
      requested: false,
      resized: false,
      deflater: null,
      scroll: null,
    });
  }

  /** @param id a client to forget (frees its zlib stream) */
  removeClient(id: number): void {
    this.#clients.get(id)?.deflater?.close();
    this.#clients.delete(id);
  }

  /** Number of clients. */
  get clients(): number {
    return this.#clients.size;
  }

  /**
   * SetPixelFormat: later updates use it; everything is resent.
   *
   * @param id client
   * @param pf the validated format
   */
  setPixelFormat(id: number, pf: PixelFormat): void {
    const c = this.#clients.get(id);
    if (!c) return;
    c.conv = new PixelConverter(pf);
    c.dirty.fill(1);
    c.clean = false;
    c.scroll = null;
  }

  /**
   * SetEncodings: the first of ZRLE/Raw in the client's order wins (ZRLE
   * only where libz loads);
   * CopyRect and DesktopSize are taken when listed.
   *
   * @param id client
   * @param encodings in the client's preference order
   */
  setEncodings(id: number, encodings: readonly number[]): void {
    const c = this.#clients.get(id);
    if (!c) return;
    // Without libz there is no ZRLE: such a client gets Raw.
    const zrle = zlibAvailable();
    c.encoding = encodings.find((e) => (e === ENCODING_ZRLE && zrle) || e === ENCODING_RAW) ??
      ENCODING_RAW;
    c.copyRect = encodings.includes(ENCODING_COPYRECT);
    c.desktopSize = encodings.includes(ENCODING_DESKTOP_SIZE);
  }

  /**
   * FramebufferUpdateRequest: non-incremental marks the area dirty.
   *
   * @param id client
   * @param incremental the request's flag
   * @param r the requested area
   */
  request(id: number, incremental: boolean, r: Rect): void {
    const c = this.#clients.get(id);
    if (!c) return;
    c.requested = true;
    if (incremental) return;
    const x1 = Math.min(r.x + r.w, this.#w), y1 = Math.min(r.y + r.h, this.#h);
    for (let ty = Math.floor(r.y / TILE); ty * TILE < y1; ty++) {
      for (let tx = Math.floor(r.x / TILE); tx * TILE < x1; tx++) {
        c.dirty[ty * this.#tilesX + tx] = 1;
        c.clean = false;
      }
    }
  }

  /** Whether some client waits for an update. */
  get waiting(): boolean {
    for (const c of this.#clients.values()) if (c.requested) return true;
    return false;
  }

  /**
   * Compares the framebuffer with the shadow, copies changed tiles into the
   * shadow and marks them dirty for every client.
   *
   * @returns what changed
   */
  refresh(): RefreshResult {
    if (!this.#view) return { changedTiles: 0, resized: false };
    const resized = this.#syncGeometry();
    const live = this.#live, shadow = this.#shadow, w = this.#w, h = this.#h;
    const stride = this.#stride, tilesX = this.#tilesX;
    const changed = new Uint8Array(tilesX * this.#tilesY);
    let count = 0;
    for (let y = 0; y < h; y++) {
      const lr = y * stride, sr = y * w, trow = (y / TILE | 0) * tilesX;
      for (let tx = 0; tx < tilesX; tx++) {
        if (changed[trow + tx]) continue;
        const x0 = tx * TILE, x1 = Math.min(x0 + TILE, w);
        for (let x = x0; x < x1; x++) {
          if (live[lr + x] !== shadow[sr + x]) {
            changed[trow + tx] = 1;
            count++;
            break;
          }
        }
      }
    }
    if (count === 0) return { changedTiles: 0, resized };
    const scroll = this.#findScroll(changed);
    for (let ty = 0; ty < this.#tilesY; ty++) {
      for (let tx = 0; tx < tilesX; tx++) {
        if (!changed[ty * tilesX + tx]) continue;
        const x0 = tx * TILE, x1 = Math.min(x0 + TILE, w);
        for (let y = ty * TILE; y < Math.min(ty * TILE + TILE, h); y++) {
          shadow.set(live.subarray(y * stride + x0, y * stride + x1), y * w + x0);
        }
      }
    }
    for (const c of this.#clients.values()) {
      // A client that has seen everything can take the scroll as a CopyRect.
      c.scroll = scroll && c.clean && c.copyRect && !c.scroll ? scroll : null;
      for (let i = 0; i < changed.length; i++) c.dirty[i] |= changed[i];
      c.clean = false;
    }
    return { changedTiles: count, resized };
  }

  /** Row hashes of the shadow, then a vote for one vertical shift of the changed band. */
  #findScroll(changed: Uint8Array): { dy: number; y0: number; y1: number } | null {
    const w = this.#w, h = this.#h, tilesX = this.#tilesX;
    let ty0 = -1, ty1 = -1;
    for (let ty = 0; ty < this.#tilesY; ty++) {
      let all = true;
      for (let tx = 0; tx < tilesX; tx++) all &&= changed[ty * tilesX + tx] === 1;
      if (all) {
        if (ty0 < 0) ty0 = ty;
        ty1 = ty + 1;
      }
    }
    if (ty0 < 0 || ty1 - ty0 < 2) return null;
    const y0 = ty0 * TILE, y1 = Math.min(ty1 * TILE, h);
    const hash = (px: Uint32Array, row: number) => {
      let v = 0x811c9dc5 | 0;
      for (let x = 0; x < w; x += 3) v = Math.imul(v ^ px[row + x], 16777619);
      return v;
    };
    const byHash = new Map<number, number>();
    for (let y = y0; y < y1; y++) {
      const v = hash(this.#shadow, y * w);
      this.#rowHash[y] = v;
      if (!byHash.has(v)) byHash.set(v, y);
    }
    const votes = new Map<number, number>();
    for (let y = y0; y < y1; y += 4) {
      const src = byHash.get(hash(this.#live, y * this.#stride));
      if (src !== undefined && src !== y) votes.set(src - y, (votes.get(src - y) ?? 0) + 1);
    }
    let best = 0, dy = 0;
    for (const [d, n] of votes) if (n > best) [best, dy] = [n, d];
    if (best * 4 < (y1 - y0) / 4 / 2) return null;
    // Rows y in [a, b) of the new frame equal shadow rows y + dy: verify exactly.
    const a = Math.max(y0, y0 - dy), b = Math.min(y1, y1 - dy);
    if (b - a < TILE) return null;
    for (let y = a; y < b; y++) {
      const lr = y * this.#stride, sr = (y + dy) * w;
      for (let x = 0; x < w; x++) if (this.#live[lr + x] !== this.#shadow[sr + x]) return null;
    }
    return { dy, y0: a, y1: b };
  }

  /**
   * The next FramebufferUpdate for a client, if it asked for one and there
   * is something to send; clears its request and dirt.
   *
   * @param id client
   * @returns the message bytes, or null
   */
  takeUpdate(id: number): Uint8Array<ArrayBuffer> | null {
    const c = this.#clients.get(id);
    if (!c || !c.requested) return null;
    const rects: Rect[] = [];
    const tilesX = this.#tilesX;
    for (let ty = 0; ty < this.#tilesY; ty++) {
      let tx = 0;
      while (tx < tilesX) {
        if (!c.dirty[ty * tilesX + tx]) {
          tx++;
          continue;
        }
        const start = tx;
        while (tx < tilesX && c.dirty[ty * tilesX + tx]) c.dirty[ty * tilesX + tx++] = 0;
        const x = start * TILE, y = ty * TILE;
        rects.push({ x, y, w: Math.min(tx * TILE, this.#w) - x, h: Math.min(TILE, this.#h - y) });
      }
    }
    const resize = c.resized && c.desktopSize;
    c.resized = false;
    if (rects.length === 0 && !resize) return null;
    c.requested = false;
    c.clean = true;
    const scroll = c.scroll;
    c.scroll = null;
    const pieces = scroll ? rects.flatMap((r) => subtractRows(r, scroll.y0, scroll.y1)) : rects;
    const out = new ByteWriter(1024);
    out.u8(0);
    out.u8(0);
    out.u16(pieces.length + (resize ? 1 : 0) + (scroll ? 1 : 0));
    if (resize) rectHeader(out, { x: 0, y: 0, w: this.#w, h: this.#h }, ENCODING_DESKTOP_SIZE);
    if (scroll) {
      // The copy comes first: it reads the client's screen before other rectangles land.
      const band = { x: 0, y: scroll.y0, w: this.#w, h: scroll.y1 - scroll.y0 };
      encodeCopyRect(out, band, 0, scroll.y0 + scroll.dy);
    }
    const src: PixelSource = { px: this.#shadow, stride: this.#w };
    for (const r of pieces) this.#encode(out, c, src, r);
    return out.bytes();
  }

  #encode(out: ByteWriter, c: ClientState, src: PixelSource, r: Rect): void {
    if (c.encoding === ENCODING_ZRLE) {
      c.deflater ??= new Deflater(1);
      encodeZrle(out, src, r, { conv: c.conv, deflater: c.deflater, scratch: this.#scratch });
    } else {
      encodeRaw(out, src, r, c.conv);
    }
  }

  /** Frees every client's zlib stream. */
  close(): void {
    for (const id of [...this.#clients.keys()]) this.removeClient(id);
  }
}

/** r minus rows [y0, y1): zero, one or two pieces. */
function subtractRows(r: Rect, y0: number, y1: number): Rect[] {
  const out: Rect[] = [];
  const topEnd = Math.min(r.y + r.h, y0);
  if (topEnd > r.y) out.push({ x: r.x, y: r.y, w: r.w, h: topEnd - r.y });
  const bottomStart = Math.max(r.y, y1);
  if (bottomStart < r.y + r.h) {
    out.push({ x: r.x, y: bottomStart, w: r.w, h: r.y + r.h - bottomStart });
  }
  return out;
}
