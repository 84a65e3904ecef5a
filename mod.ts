/**
 * denovmm's public API: build, run and script virtual machines on Linux
 * KVM from TypeScript. {@link createVm} takes a {@link VmConfig} and gives a
 * {@link Vm}: start it, talk to its serial console, pause, power down,
 * reset and wait for it; add your own PIO/MMIO devices (`devices`) and
 * virtio devices (`virtio`).
 *
 * ```ts
 * import { createVm } from "./mod.ts";
 *
 * export async function release(kernel: string, initrd: string): Promise<string> {
 *   await using vm = await createVm({ kernel, initrd, cpus: 2, memory: "512M" });
 *   await vm.start();
 *   await vm.serial.waitFor("# ", { timeoutMs: 60_000 });
 *   await vm.serial.write("uname -r; poweroff -f\n");
 *   const [, r] = await vm.serial.waitFor(/^(\d+\.\d+\S*)\r?\n/m, { timeoutMs: 60_000 });
 *   await vm.wait();
 *   return r;
 * }
 * ```
 *
 * @module
 */
export { createVm, Vm } from "./vm/vm.ts";
export type { VmEndReason, VmEventType, VmExit, VmStatus } from "./vm/vm.ts";
export { NicControlError } from "./vm/nic_control.ts";
export type { NicInfo } from "./vm/nic_control.ts";
export type { Screenshot } from "./ui/screenshot.ts";
export {
  DEFAULT_CMDLINE,
  DEFAULT_MEMORY_BYTES,
  MAX_CPUS,
  MIN_MEMORY_BYTES,
  VmConfigError,
} from "./vm/config.ts";
export type {
  DiskConfig,
  FlatImage,
  NicConfig,
  PlacementConfig,
  SerialConfig,
  VirtioFunctionConfig,
  VmConfig,
} from "./vm/config.ts";
export { SERIAL_HISTORY_CHARS, SerialTimeoutError } from "./vm/serial_console.ts";
export type { VmSerial } from "./vm/serial_console.ts";
export type {
  Bh,
  BhHandle,
  CallbackOptions,
  ClockType,
  EventLoop,
  FdHandlers,
  Timer,
} from "./mainloop/types.ts";
export type { MainLoopOptions } from "./mainloop/main_loop.ts";
export type {
  BusMapping,
  DeviceContext,
  DeviceFactory,
  DeviceSpec,
} from "./devices/device_spec.ts";
export type { BusDevice } from "./devices/bus.ts";
export type { IrqLine } from "./devices/irq.ts";
export type { SystemEvents } from "./devices/legacy/system_events.ts";
export { GuestMemory, GuestMemoryError } from "./memory/guest_memory.ts";
export type { GuestMemoryLayout, MemoryRegion } from "./memory/guest_memory.ts";
