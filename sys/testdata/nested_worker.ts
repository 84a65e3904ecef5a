// A Worker for worker_url_test.ts that starts a Worker itself from a URL
// relative to its own import.meta.url (as an I/O thread starts its aio pool):
// under --allow-ffi it is served as a bundled data: (once blob:) module, and resolving against
// that base threw "Invalid URL" before import.meta.url was pinned.
import { workerUrl } from "../worker_url.ts";

const inner = new Worker(workerUrl(new URL("./echo_worker.ts", import.meta.url)), {
  type: "module",
});
inner.onmessage = (e) => {
  (self as unknown as Worker).postMessage({ tid: e.data.tid, base: import.meta.url });
  inner.terminate();
};
