// A Worker for worker_url_test.ts: imports a sibling module graph (sys/) so
// loading it exercises the served-module path.
import { gettid } from "../thread.ts";

(self as unknown as Worker).postMessage({ tid: gettid() });
