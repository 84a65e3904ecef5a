// For worker_url_test.ts: imported with importBundled by a script that
// already runs shared_counter.ts.
import { bump, count } from "./shared_counter.ts";

bump();
/** The count after this module's bump: 2 when the instance is shared. */
export const seen: number = count;
/** Whether this module was loaded as the program's main module. */
export const main: boolean = import.meta.main;
/** A module loaded on demand, which needs Deno's Node layer. */
export const lazy = (): Promise<{ digest: string }> => import("./lazy_node_dep.ts");
