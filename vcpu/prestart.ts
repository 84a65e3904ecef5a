/**
 * vCPU Workers started ahead of their machine: a Worker's start (its V8
 * isolate, then vcpu/worker.ts and the modules it will import) is the longest step
 * between the process start and the first KVM_RUN, and it needs nothing from
 * the machine. So the builder asks for the Workers first and does the rest
 * of the set-up (device models, KVM, guest RAM, the kernel) while they load
 * on their own threads; {@link VcpuThread} then takes a waiting Worker
 * instead of starting one.
 *
 * A prestarted Worker also runs the modules its init will name (the
 * hypervisor backend, the device modules) as part of its first module, loaded
 * in one go: its entry is one bundle of vcpu/worker.ts and them
 * (sys/worker_url.ts `workerBundleUrl`, code-cached by Deno from the second
 * start on). When VcpuThread later hands it those modules' URLs, the Worker
 * imports them through `importServed` (sys/bundle_registry.ts), which finds
 * them already run.
 *
 * Main thread only. Workers never taken are ended by
 * {@link discardPrestartedVcpuWorkers}.
 *
 * @module
 */
import { workerBundleUrl, workerUrl } from "../sys/worker_url.ts";
import { traceMark } from "../sys/start_trace.ts";
import { bundleUrlNaming } from "../sys/bundle_registry.ts";

/** A prestarted vCPU Worker, and what its entry already ran. */
export interface PrestartedVcpuWorker {
  /** The Worker, loading or waiting. */
  worker: Worker;
  /** Its entry's URL (a `blob:` bundle under `--allow-ffi` alone). */
  entry: string;
  /** The file URLs of the modules its entry runs besides vcpu/worker.ts. */
  modules: readonly string[];
}

const waiting = new Map<number, PrestartedVcpuWorker>();

/**
 * The vCPU Worker module's URL, as served under `--allow-ffi`.
 *
 * @returns a URL for `new Worker`
 * @example
 * ```ts ignore
 * const w = new Worker(vcpuWorkerUrl(), { type: "module", name: "vcpu-0" });
 * ```
 */
export function vcpuWorkerUrl(): string {
  return workerUrl(new URL("./worker.ts", import.meta.url));
}

/**
 * Starts a Worker for each vCPU index below `count` that has none waiting.
 * The Workers are named `vcpu-N` and import `modules` at once.
 *
 * @param count vCPUs the coming machine has
 * @param modules file URLs the Workers will import (backend, devices)
 * @example
 * ```ts ignore
 * prestartVcpuWorkers(2, [new URL("../kvm/vcpu_backend.ts", import.meta.url).href]);
 * ```
 */
export function prestartVcpuWorkers(count: number, modules: readonly string[] = []): void {
  if (waiting.size >= count) return;
  const entry = workerBundleUrl([new URL("./worker.ts", import.meta.url), ...modules]);
  const ran = modules.map((m) => new URL(m).href);
  for (let i = 0; i < count; i++) {
    if (waiting.has(i)) continue;
    traceMark(`vcpu-${i} Worker prestarted`);
    const worker = new Worker(entry, { type: "module", name: `vcpu-${i}` });
    waiting.set(i, { worker, entry, modules: ran });
  }
}

/**
 * Takes the waiting Worker for a vCPU, if one was prestarted.
 *
 * @param index the vCPU's index
 * @returns the Worker (no longer waiting) with what its entry ran, or undefined
 * @example
 * ```ts ignore
 * const w = takePrestartedVcpuWorker(0)?.worker ?? new Worker(vcpuWorkerUrl(), { type: "module" });
 * ```
 */
export function takePrestartedVcpuWorker(index: number): PrestartedVcpuWorker | undefined {
  const w = waiting.get(index);
  waiting.delete(index);
  return w;
}

/**
 * Ends the Workers no machine took (a build that failed before its vCPUs).
 *
 * @example
 * ```ts ignore
 * discardPrestartedVcpuWorkers();
 * ```
 */
export function discardPrestartedVcpuWorkers(): void {
  for (const w of waiting.values()) w.worker.terminate();
  waiting.clear();
}

/**
 * The URL to hand a prestarted Worker for one of the modules it will
 * import. A module its entry bundle already ran needs no serving: a URL
 * naming it in the bundle fragment is found in the Worker's registry
 * (sys/bundle_registry.ts `importServed`) without a load, and serving it
 * would read and send its own bundle for nothing (hundreds of ms of the
 * main thread on the way to the first KVM_RUN in the nested host).
 * Any other module is served as {@link workerUrl} serves it.
 *
 * @param pre the Worker as taken, or undefined for a fresh one
 * @param module the module's file URL
 * @returns a URL for the Worker's `importServed`
 * @example
 * ```ts ignore
 * const url = moduleUrlFor(takePrestartedVcpuWorker(0), backendModule);
 * ```
 */
export function moduleUrlFor(pre: PrestartedVcpuWorker | undefined, module: string): string {
  const href = new URL(module).href;
  // Only a bundle registers what it ran (a data: entry imports served files).
  if (pre !== undefined && pre.entry.startsWith("blob:") && pre.modules.includes(href)) {
    return bundleUrlNaming(pre.entry, href);
  }
  return workerUrl(module);
}
