/**
 * Where the encoding job runs: in the dedicated `vnc-worker` thread (the
 * default, QEMU's ui/vnc-jobs.c) or inline on the main loop (only for the
 * benchmark's comparison and for tests). Both take the same requests from
 * the server and hand back ready-to-send FramebufferUpdate messages.
 *
 * @module
 */
import { EncoderCore, type FramebufferView } from "./encoder_core.ts";
import type { PixelFormat } from "./pixel_format.ts";
import type { Rect } from "./encodings.ts";
import type { EventLoop, Timer } from "../../mainloop/types.ts";
import { workerUrl } from "../../sys/worker_url.ts";

/** The framebuffer as handed to an encoder: memory by address or shared buffer, plus geometry. */
export interface FramebufferSource {
  /** Host address of the framebuffer mapping (guest memory), with its length. */
  addr?: bigint;
  /** Bytes at addr. */
  length?: number;
  /** Or a shared buffer holding the pixels (tests, benchmarks). */
  sab?: SharedArrayBuffer;
  /** Shared geometry words (see GEOMETRY_WORDS). */
  geometry: SharedArrayBuffer;
}

/** Called with a finished update for a client. */
export type UpdateSink = (id: number, bytes: Uint8Array<ArrayBuffer>) => void;

/** The encoder as the server sees it. */
export interface VncEncoder {
  /** @param id a new client */
  addClient(id: number): void;
  /** @param id a departed client */
  removeClient(id: number): void;
  /** SetPixelFormat. */
  setPixelFormat(id: number, pf: PixelFormat): void;
  /** SetEncodings. */
  setEncodings(id: number, list: number[]): void;
  /** FramebufferUpdateRequest (only forwarded while the client's output queue has room). */
  request(id: number, incremental: boolean, r: Rect): void;
  /**
   * Points the job at another framebuffer, or (null) at none; resolves once
   * the old memory will not be read again.
   */
  setFramebuffer(fb: FramebufferSource | null): Promise<void>;
  /** Stops the job (the Worker ends). */
  close(): Promise<void>;
  /** Milliseconds of the caller's thread the job took (inline only). */
  readonly busyMs?: number;
}

/** Options of both encoders. */
export interface EncoderOptions {
  /** Where finished updates go (on the main thread). */
  onUpdate: UpdateSink;
  /** How often to look for changes while a client waits (default 30 ms, as QEMU's base). */
  refreshMs?: number;
  /** Where the encoder's notices go (default console.error). */
  log?: (line: string) => void;
}

/**
 * Runs the job on the calling thread, driven by a loop timer.
 *
 * @example
 * ```ts ignore
 * const enc = new InlineEncoder(loop, fb, { onUpdate: (id, b) => send(id, b) });
 * ```
 */
export class InlineEncoder implements VncEncoder {
  #core: EncoderCore;
  #timer: Timer;
  #loop: EventLoop;
  #sink: UpdateSink;
  #refreshNs: number;

  /**
   * @param loop the loop whose thread encodes
   * @param fb the framebuffer (sab form, or addr for guest memory)
   * @param options update sink and refresh period
   */
  constructor(loop: EventLoop, fb: FramebufferSource, options: EncoderOptions) {
    this.#loop = loop;
    this.#sink = options.onUpdate;
    this.#refreshNs = (options.refreshMs ?? 30) * 1e6;
    this.#core = new EncoderCore(viewOf(fb));
    this.#timer = loop.timer("host", () => this.#tick());
  }

  /** Milliseconds this thread spent encoding (and in the sink it calls). */
  busyMs = 0;

  #tick(): void {
    if (!this.#core.waiting) return;
    const t = performance.now();
    this.#core.refresh();
    for (const id of this.#ids) {
      const u = this.#core.takeUpdate(id);
      if (u) this.#sink(id, u);
    }
    this.busyMs += performance.now() - t;
    if (this.#core.waiting) this.#arm();
  }

  #ids = new Set<number>();

  #arm(): void {
    if (!this.#timer.pending) this.#timer.mod(this.#loop.now("host") + this.#refreshNs);
  }

  addClient(id: number): void {
    this.#ids.add(id);
    this.#core.addClient(id);
  }
  removeClient(id: number): void {
    this.#ids.delete(id);
    this.#core.removeClient(id);
  }
  setPixelFormat(id: number, pf: PixelFormat): void {
    this.#core.setPixelFormat(id, pf);
  }
  setEncodings(id: number, list: number[]): void {
    this.#core.setEncodings(id, list);
  }
  request(id: number, incremental: boolean, r: Rect): void {
    const t = performance.now();
    this.#core.request(id, incremental, r);
    if (!incremental) {
      this.#core.refresh();
      const u = this.#core.takeUpdate(id);
      if (u) this.#sink(id, u);
    }
    this.busyMs += performance.now() - t;
    this.#arm();
  }
  setFramebuffer(fb: FramebufferSource | null): Promise<void> {
    this.#core.setView(fb ? viewOf(fb) : null);
    if (fb) this.#arm();
    return Promise.resolve();
  }
  close(): Promise<void> {
    this.#timer.del();
    this.#core.close();
    return Promise.resolve();
  }
}

/**
 * Builds the encoder's view of a framebuffer source (in whichever thread calls it).
 *
 * @param fb the source
 * @returns memory and geometry
 */
export function viewOf(fb: FramebufferSource): FramebufferView {
  const geometry = new Int32Array(fb.geometry);
  if (fb.sab) return { memory: fb.sab, geometry };
  if (fb.addr === undefined || fb.length === undefined) {
    throw new TypeError("A framebuffer source needs sab, or addr and length");
  }
  const p = Deno.UnsafePointer.create(fb.addr);
  if (p === null) throw new RangeError("Null framebuffer address");
  return { memory: Deno.UnsafePointerView.getArrayBuffer(p, fb.length), geometry };
}

/**
 * Runs the job in a Worker whose thread is named `vnc-worker`.
 *
 * @example
 * ```ts ignore
 * const enc = await WorkerEncoder.start(fb, { onUpdate: (id, b) => send(id, b) });
 * ```
 */
export class WorkerEncoder implements VncEncoder {
  #w: Worker;
  #done: Promise<void>;
  #resolveDone!: () => void;

  private constructor(w: Worker) {
    this.#w = w;
    this.#done = new Promise((r) => this.#resolveDone = r);
  }

  /**
   * Starts the Worker and waits until it is ready.
   *
   * @param fb the framebuffer
   * @param options update sink and refresh period
   * @returns the encoder
   */
  static async start(fb: FramebufferSource, options: EncoderOptions): Promise<WorkerEncoder> {
    const w = new Worker(workerUrl(new URL("./_encoder_worker.ts", import.meta.url)), {
      type: "module",
      name: "vnc-worker",
    });
    const enc = new WorkerEncoder(w);
    const ready = new Promise<void>((resolve, reject) => {
      w.onmessage = (e: MessageEvent) => {
        const m = e.data;
        if (m.t === "update") options.onUpdate(m.id, new Uint8Array(m.buf, 0, m.len));
        else if (m.t === "ready") resolve();
        else if (m.t === "closed") enc.#resolveDone();
        else if (m.t === "fb-done") enc.ack(m.seq);
        else if (m.t === "log") (options.log ?? console.error)(`vnc: ${m.message}`);
        else if (m.t === "error") {
          console.error(`vnc-worker: ${m.message}`);
          reject(new Error(m.message));
        }
      };
      w.onerror = (e) => {
        e.preventDefault();
        console.error(`vnc-worker: ${e.message}`);
        reject(new Error(e.message));
        enc.#resolveDone();
      };
    });
    w.postMessage({ t: "init", fb, refreshMs: options.refreshMs ?? 30 });
    await ready;
    return enc;
  }

  addClient(id: number): void {
    this.#w.postMessage({ t: "add", id });
  }
  removeClient(id: number): void {
    this.#w.postMessage({ t: "remove", id });
  }
  setPixelFormat(id: number, pf: PixelFormat): void {
    this.#w.postMessage({ t: "format", id, pf });
  }
  setEncodings(id: number, list: number[]): void {
    this.#w.postMessage({ t: "encodings", id, list });
  }
  request(id: number, incremental: boolean, r: Rect): void {
    this.#w.postMessage({ t: "request", id, incremental, r });
  }
  #seq = 0;
  #acks = new Map<number, () => void>();
  /** @internal an acknowledgement from the Worker */
  ack(seq: number): void {
    this.#acks.get(seq)?.();
    this.#acks.delete(seq);
  }
  setFramebuffer(fb: FramebufferSource | null): Promise<void> {
    const seq = ++this.#seq;
    const done = new Promise<void>((r) => this.#acks.set(seq, r));
    this.#w.postMessage({ t: "fb", fb, seq });
    return done;
  }
  async close(): Promise<void> {
    for (const r of this.#acks.values()) r();
    this.#acks.clear();
    this.#w.postMessage({ t: "stop" });
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#done, new Promise((r) => t = setTimeout(r, 2000))]);
    clearTimeout(t);
    this.#w.terminate();
  }
}
