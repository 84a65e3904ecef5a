// For worker_url_test.ts: a module behind a dynamic import that imports a
// Node built-in (a bundle run as a script loads it on first use).
import { createHash } from "node:crypto";

/** SHA-1 of "a". */
export const digest: string = createHash("sha1").update("a").digest("hex");
