/**
 * I/O threads: a {@link MainLoop} running in its own Worker, named
 * `iothread-N`, that owns fds, timers and BHs: the virtqueues of the devices
 * placed on it (`iothread=N`), and their aio engines.
 *
 * Functions cannot cross Workers, so work is sent as a module and export
 * name: `iothread.call(url, "fn", ...args)` imports the module in the
 * iothread (once) and runs `fn(loop, ...args)` on the iothread's loop thread,
 * resolving with its (awaited, structured-cloneable) result.
 *
 * @module
 */
import { workerUrl } from "../sys/worker_url.ts";
import { SharedBh } from "./bh.ts";
import type { BhHandle } from "./types.ts";

/** Options for {@link IOThread.start}. */
export interface IOThreadOptions {
  /** Thread name; defaults to `iothread-N`. */
  name?: string;
}

type Reply = { type: "ready"; tid: number; wake: BhHandle } | { type: "stopped" } | {
  type: "result";
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
};

let nextId = 0;

/** A Worker running its own main loop. */
export class IOThread {
  /** Thread name (`iothread-0`, ...). */
  readonly name: string;
  /** The Worker's kernel thread id. */
  tid = 0;
  #worker: Worker;
  /** Messages posted that the iothread has not finished (MainLoopOptions.mailbox). */
  #mailbox = new Int32Array(new SharedArrayBuffer(4));
  #wake: SharedBh | null = null;
  #calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #nextCall = 0;
  #ready: PromiseWithResolvers<void> = Promise.withResolvers();
  #stopped: PromiseWithResolvers<void> = Promise.withResolvers();
  #stopping = false;

  private constructor(name: string) {
    this.name = name;
    this.#worker = new Worker(workerUrl(new URL("./_iothread_worker.ts", import.meta.url)), {
      type: "module",
      name,
    });
    this.#worker.onmessage = (e: MessageEvent<Reply>) => this.#onMessage(e.data);
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      const err = new Error(`${name} failed: ${e.message}`);
      this.#ready.reject(err);
      for (const c of this.#calls.values()) c.reject(err);
      this.#calls.clear();
      this.#stopped.resolve();
    };
    this.#worker.postMessage({ type: "init", name, mailbox: this.#mailbox.buffer });
  }

  /**
   * Starts an iothread and waits until its loop runs.
   *
   * @param options name
   * @returns the running iothread
   * @example
   * ```ts
   * import { IOThread } from "./iothread.ts";
   * const io = await IOThread.start();
   * await io.stop();
   * ```
   */
  static async start(options: IOThreadOptions = {}): Promise<IOThread> {
    const t = new IOThread(options.name ?? `iothread-${nextId++}`);
    try {
      await t.#ready.promise;
    } catch (e) {
      t.#worker.terminate();
      throw e;
    }
    return t;
  }

  /**
   * Runs `module.fn(loop, ...args)` on the iothread's loop thread.
   *
   * @param module URL of an ES module exporting fn
   * @param fn export name
   * @param args structured-cloneable arguments (SharedArrayBuffers are shared)
   * @returns fn's awaited result
   */
  call<T = unknown>(module: string | URL, fn: string, ...args: unknown[]): Promise<T> {
    if (this.#stopping) return Promise.reject(new Error(`${this.name} is stopped`));
    const id = this.#nextCall++;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    this.#calls.set(id, { resolve, reject });
    this.#post({ type: "call", id, module: workerUrl(module), fn, args });
    return promise as Promise<T>;
  }

  /**
   * Stops the loop, waits for it, and ends the Worker.
   *
   * @returns resolves when the Worker is gone
   */
  async stop(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#post({ type: "stop" });
    }
    await this.#stopped.promise;
    this.#worker.terminate();
  }

  /** Posts to the iothread and wakes its loop, which sleeps on its own thread. */
  #post(m: unknown): void {
    Atomics.add(this.#mailbox, 0, 1);
    this.#worker.postMessage(m);
    this.#wake?.schedule();
  }

  #onMessage(m: Reply): void {
    if (m.type === "ready") {
      this.tid = m.tid;
      this.#wake = new SharedBh(m.wake);
      this.#ready.resolve();
    } else if (m.type === "stopped") {
      for (const c of this.#calls.values()) c.reject(new Error(`${this.name} stopped`));
      this.#calls.clear();
      this.#stopped.resolve();
    } else if (m.type === "result") {
      const c = this.#calls.get(m.id);
      if (!c) return;
      this.#calls.delete(m.id);
      if (m.ok) c.resolve(m.value);
      else c.reject(new Error(m.error));
    }
  }
}
