// A thread that names itself (as vCPU, aio and iothread Workers do) and
// reports its thread id, then waits to be terminated.
import { gettid, setThreadName } from "../../sys/thread.ts";

const self = globalThis as unknown as {
  onmessage: ((e: MessageEvent<string>) => void) | null;
  postMessage(m: unknown): void;
};
self.onmessage = (e) => {
  setThreadName(e.data);
  self.postMessage(gettid());
};
