/**
 * A scripted QMP client for tests: a non-blocking libc socket polled from
 * timers, so it can talk to a server on a MainLoop of the same isolate.
 *
 * @module
 */
import { socketRecv, socketSend, unixConnect } from "../sys/unix_socket.ts";
import { closeFd } from "../sys/fd.ts";
import type { QmpBlock, QmpRunState, QmpTarget } from "./target.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A test client. */
export class TestClient {
  readonly fd: number;
  #pending = "";
  #closed = false;
  /** Whether the server closed the connection. */
  eof = false;
  /** How long {@link TestClient.next} waits by default. */
  timeoutMs = 5000;

  /** @param path socket path */
  constructor(path: string) {
    this.fd = unixConnect(path, { nonblock: true });
  }

  /** Sends raw text (all of it). */
  async sendRaw(text: string | Uint8Array<ArrayBuffer>): Promise<void> {
    let b = typeof text === "string" ? enc.encode(text) : text;
    while (b.length > 0) {
      const n = socketSend(this.fd, b);
      if (n < 0) await sleep(2);
      else b = b.subarray(n);
    }
  }

  /** Sends one command. */
  send(execute: string, args?: unknown, id?: unknown): Promise<void> {
    const m: Record<string, unknown> = { execute };
    if (args !== undefined) m.arguments = args;
    if (id !== undefined) m.id = id;
    return this.sendRaw(JSON.stringify(m) + "\n");
  }

  /** The next message, parsed (throws after timeoutMs or at EOF). */
  async next(timeoutMs = this.timeoutMs): Promise<Record<string, unknown>> {
    const buf = new Uint8Array(65536);
    const until = Date.now() + timeoutMs;
    for (;;) {
      const nl = this.#pending.indexOf("\n");
      if (nl >= 0) {
        const l = this.#pending.slice(0, nl);
        this.#pending = this.#pending.slice(nl + 1);
        return JSON.parse(l);
      }
      let n: number;
      try {
        n = socketRecv(this.fd, buf);
      } catch {
        n = 0;
      }
      if (n === 0) {
        this.eof = true;
        throw new Error(`connection closed (pending '${this.#pending}')`);
      }
      if (n > 0) this.#pending += dec.decode(buf.subarray(0, n), { stream: true });
      else if (Date.now() > until) throw new Error("no message in time");
      else await sleep(2);
    }
  }

  /** Sends a command and returns the next message. */
  async call(execute: string, args?: unknown, id?: unknown): Promise<Record<string, unknown>> {
    await this.send(execute, args, id);
    return await this.next();
  }

  /** Waits until the server closes the connection (true) or timeoutMs passes. */
  async waitEof(timeoutMs = 5000): Promise<boolean> {
    const buf = new Uint8Array(65536);
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      let n: number;
      try {
        n = socketRecv(this.fd, buf);
      } catch {
        n = 0;
      }
      if (n === 0) return this.eof = true;
      if (n < 0) await sleep(2);
    }
    return false;
  }

  /** Closes the socket. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeFd(this.fd);
  }
}

/** A QmpTarget that records what it was asked. */
export class FakeTarget implements QmpTarget {
  state: QmpRunState = "running";
  readonly calls: string[] = [];
  stop(): Promise<void> {
    this.calls.push("stop");
    return sleep(5).then(() => {
      this.state = "paused";
    });
  }
  cont(): void {
    this.calls.push("cont");
    this.state = "running";
  }
  status(): QmpRunState {
    return this.state;
  }
  powerdown(): void {
    this.calls.push("powerdown");
  }
  reset(): void {
    this.calls.push("reset");
  }
  quit(): void {
    this.calls.push("quit");
  }
  cpus() {
    return [{ index: 0, threadId: 1001 }, { index: 1, threadId: 1002 }];
  }
  iothreads() {
    return [{ id: "iothread-0", threadId: 2001 }];
  }
  blocks = (): QmpBlock[] => [
    { device: "virtio0", file: "/tmp/d.img", readOnly: false, size: 1 << 20, direct: false },
  ];
  stats() {
    return { vcpus: [{ exits: 5 }] };
  }
  name?: () => string | undefined;
  screendump?: (filename: string, format: "ppm" | "png") => void;
  sendKey?: (keys: (string | number)[], holdMs: number) => void;
}
