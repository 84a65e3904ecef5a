/**
 * The modules that bundles (sys/module_bundle.ts) have run in this isolate,
 * and a dynamic import that uses them: a Worker whose entry bundle already
 * ran a module (a prestarted vCPU Worker runs its backend and device
 * modules) gets that module's exports at once, instead of loading another
 * bundle (hundreds of KB, tens of ms) to find the same module already
 * there. A bundle URL names the module it exports in its fragment
 * (`#denovmm-bundle=` and the file URL, encoded), so the lookup needs no
 * load. Small on purpose: every Worker that imports modules by URL loads it.
 *
 * @module
 */

/** Where the bundles of an isolate register their modules (a `Symbol.for` key on globalThis). */
export const REGISTRY_SYMBOL = "denovmm.modules";
/** The fragment of a bundle URL that exports one entry: then the entry's file URL, encoded. */
export const BUNDLE_FRAGMENT = "#denovmm-bundle=";

/**
 * A bundle URL that names `entry` in its fragment, so that
 * {@link importServed} finds the entry's exports in an isolate where a
 * bundle already ran it, without loading `url`.
 *
 * @param url a bundle's URL
 * @param entry the file URL of a module the bundle runs
 * @returns the URL with the fragment
 */
export function bundleUrlNaming(url: string, entry: string): string {
  return `${url}${BUNDLE_FRAGMENT}${encodeURIComponent(entry)}`;
}

interface Registered {
  ns: Record<string, unknown>;
  state: number;
}

/**
 * `import(url)`, except that a bundle URL whose module a bundle already ran
 * in this isolate resolves to that module's exports without a load.
 *
 * @param url a module URL (as sys/worker_url.ts serves it, or any other)
 * @returns the module's exports
 * @example
 * ```ts ignore
 * import { importServed } from "../sys/bundle_registry.ts";
 * const mod = await importServed(spec.module);
 * ```
 */
export function importServed(url: string): Promise<Record<string, unknown>> {
  const at = url.indexOf(BUNDLE_FRAGMENT);
  if (at >= 0) {
    const key = decodeURIComponent(url.slice(at + BUNDLE_FRAGMENT.length));
    const registry = (globalThis as Record<symbol, Map<string, Registered> | undefined>)[
      Symbol.for(REGISTRY_SYMBOL)
    ];
    const r = registry?.get(key);
    if (r?.state === 1) return Promise.resolve(r.ns);
  }
  return import(url);
}
