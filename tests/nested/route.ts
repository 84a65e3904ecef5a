/**
 * Which way the KVM tests reach a faithful KVM on this machine: straight through
 * /dev/kvm, or inside the nested host (QEMU's emulator offering AMD SVM to a
 * Debian kernel). PVM's /dev/kvm is not faithful x86, so it counts as absent.
 *
 * @module
 */

/** `direct`: use this machine's /dev/kvm; `nested`: run inside the nested host. */
export type KvmRoute = "direct" | "nested";

/** Options for {@linkcode kvmRoute}; the defaults probe the real machine. */
export interface KvmRouteOptions {
  /** Environment to read `DENOVMM_KVM_ROUTE` from (default: the process's). */
  env?: { get(key: string): string | undefined };
  /** Prefix for `/dev` and `/sys` paths, so tests can probe a fake tree (default ""). */
  root?: string;
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function kvmOpens(path: string): boolean {
  try {
    Deno.openSync(path, { read: true, write: true }).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Decides the KVM route. `DENOVMM_KVM_ROUTE=direct|nested` overrides the probe
 * (any other value throws). Otherwise "direct" only when /dev/kvm opens and
 * `kvm_intel` or `kvm_amd` is loaded; PVM (`kvm_pvm`) or no /dev/kvm means
 * "nested".
 *
 * @example
 * ```ts
 * import { kvmRoute } from "./route.ts";
 * if (kvmRoute() === "nested") console.log("KVM tests run inside the nested host");
 * ```
 */
export function kvmRoute(options: KvmRouteOptions = {}): KvmRoute {
  const env = options.env ?? Deno.env;
  const forced = env.get("DENOVMM_KVM_ROUTE");
  if (forced !== undefined && forced !== "") {
    if (forced === "direct" || forced === "nested") return forced;
    throw new TypeError(`Invalid DENOVMM_KVM_ROUTE: ${forced} (expected direct or nested)`);
  }
  const root = options.root ?? "";
  if (existsSync(`${root}/sys/module/kvm_pvm`)) return "nested";
  const hardware = existsSync(`${root}/sys/module/kvm_intel`) ||
    existsSync(`${root}/sys/module/kvm_amd`);
  return hardware && kvmOpens(`${root}/dev/kvm`) ? "direct" : "nested";
}

// For shell scripts: `deno run -A tests/nested/route.ts` prints `direct` or `nested`.
if (import.meta.main) console.log(kvmRoute());
