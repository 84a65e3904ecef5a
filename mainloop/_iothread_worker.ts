/**
 * The body of an iothread Worker: names the thread, runs a MainLoop, and
 * serves `call` requests on the loop's thread.
 *
 * @module
 */
import { gettid, setThreadName } from "../sys/thread.ts";
import { MainLoop } from "./main_loop.ts";
import { importServed } from "../sys/bundle_registry.ts";

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => unknown;

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
  close(): void;
};

let loop: MainLoop | null = null;
let running: Promise<void> | null = null;
/** Messages on their way to this side (see MainLoopOptions.mailbox). */
let mailbox: Int32Array<SharedArrayBuffer> | null = null;

self.onmessage = async (e: MessageEvent) => {
  const m = e.data;
  if (m.type === "init") {
    setThreadName(m.name);
    mailbox = new Int32Array(m.mailbox as SharedArrayBuffer);
    loop = new MainLoop({ name: m.name, mailbox });
    // The parent schedules this after each message, to wake a sleeping loop.
    const wake = loop.bh(() => {}, "iothread-mail");
    running = loop.run();
    running.catch((err) => console.error(`${m.name}: loop failed:`, err));
    self.postMessage({ type: "ready", tid: gettid(), wake: wake.handle() });
  } else if (m.type === "call") {
    try {
      const mod = await importServed(m.module);
      const fn = mod[m.fn] as Fn | undefined;
      if (typeof fn !== "function") throw new TypeError(`${m.module} has no function ${m.fn}`);
      const value = await fn(loop, ...m.args);
      self.postMessage({ type: "result", id: m.id, ok: true, value });
    } catch (err) {
      self.postMessage({ type: "result", id: m.id, ok: false, error: String(err) });
    } finally {
      Atomics.sub(mailbox!, 0, 1);
    }
  } else if (m.type === "stop") {
    loop?.stop();
    await running?.catch(() => {});
    loop?.close();
    self.postMessage({ type: "stopped" });
    self.onmessage = null;
  }
};
