/**
 * vCPU Workers started ahead of their machine: a Worker's start (its V8
 * isolate, then vcpu/worker.ts and the modules it will import, compiled
 * from source since `blob:` modules get no code cache) is the longest step
 * between the process start and the first KVM_RUN, and it needs nothing from
 * the machine. So the builder asks for the Workers first and does the rest
 * of the set-up (device models, KVM, guest RAM, the kernel) while they load
 * on their own threads; {@link VcpuThread} then takes a waiting Worker
 * instead of starting one.
 *
 * A started Worker is told which modules to import right away (the
 * hypervisor backend, the device modules): the URLs served here are the ones
 * VcpuThread hands it later (sys/worker_url.ts serves one blob per module
 * per process), so those later imports find the modules loaded.
 *
 * Main thread only. Workers never taken are ended by
 * {@link discardPrestartedVcpuWorkers}.
 *
 * @module
 */
import { workerUrl } from "../sys/worker_url.ts";
import { traceMark } from "../sys/start_trace.ts";

/** The first message a prestarted vCPU Worker gets: modules to import now. */
export interface VcpuPreload {
  /** Module URLs (as served) to import before the init message comes. */
  readonly preload: readonly string[];
}

const waiting = new Map<number, Worker>();

/** The vCPU Worker module's URL, as served under `--allow-ffi`. */
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
  const url = vcpuWorkerUrl();
  const preload: VcpuPreload = { preload: modules.map((m) => workerUrl(m)) };
  for (let i = 0; i < count; i++) {
    if (waiting.has(i)) continue;
    traceMark(`vcpu-${i} Worker prestarted`);
    const w = new Worker(url, { type: "module", name: `vcpu-${i}` });
    w.postMessage(preload);
    waiting.set(i, w);
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
