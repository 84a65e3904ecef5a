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
