// For worker_url_test.ts: a Worker whose graph the bundler refuses (a
// destructuring export declaration), so it is served as blob modules.
import { a, b } from "./unbundled_dep.ts";

(self as unknown as Worker).postMessage({ a, b });
