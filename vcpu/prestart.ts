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

const waiting = new Map<number, Worker>();

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
  for (let i = 0; i < count; i++) {
    if (waiting.has(i)) continue;
    traceMark(`vcpu-${i} Worker prestarted`);
    waiting.set(i, new Worker(entry, { type: "module", name: `vcpu-${i}` }));
  }
}

/**
 * Takes the waiting Worker for a vCPU, if one was prestarted.
 *
 * @param index the vCPU's index
 * @returns the Worker (no longer waiting), or undefined
 * @example
 * ```ts ignore
 * const w = takePrestartedVcpuWorker(0) ?? new Worker(vcpuWorkerUrl(), { type: "module" });
 * ```
 */
export function takePrestartedVcpuWorker(index: number): Worker | undefined {
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
  for (const w of waiting.values()) w.terminate();
  waiting.clear();
}
