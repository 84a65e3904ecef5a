// Test fixture: functions an iothread runs through IOThread.call.
import { threadName } from "../../sys/thread.ts";
import { eventFdRead } from "../../sys/fd.ts";
import type { MainLoop } from "../main_loop.ts";

let count = 0n;

export function name(_loop: MainLoop): string {
  return threadName();
}

export function add(_loop: MainLoop, a: number, b: number): number {
  return a + b;
}

export function watch(loop: MainLoop, fd: number): void {
  loop.setFdHandler(fd, { read: () => (count += eventFdRead(fd)) });
}

export function unwatch(loop: MainLoop, fd: number): string {
  loop.setFdHandler(fd, null);
  return String(count);
}

export function waitFor(_loop: MainLoop, n: string): Promise<string> {
  const { promise, resolve } = Promise.withResolvers<string>();
  const poll = () => (count >= BigInt(n) ? resolve(String(count)) : setTimeout(poll, 1));
  poll();
  return promise;
}

export function fail(_loop: MainLoop): never {
  throw new RangeError("Deliberate failure");
}

/** Reads a file through an aio engine owned by this iothread's loop. */
export async function readWithAio(
  loop: MainLoop,
  path: string,
  kind: "threads" | "io_uring",
): Promise<string> {
  const { createAioBackend } = await import("../../aio/backend.ts");
  const { openFile, closeFd, O_RDONLY } = await import("../../sys/fd.ts");
  const aio = createAioBackend(loop, kind, { pool: { maxThreads: 2 } });
  const fd = openFile(path, O_RDONLY);
  try {
    const buf = new Uint8Array(64);
    const n = await new Promise<number>((r) => aio.submit({ op: "pread", fd, offset: 0, buf }, r));
    return `${threadName()}:${new TextDecoder().decode(buf.subarray(0, n))}`;
  } finally {
    closeFd(fd);
    await aio.close();
  }
}
