/**
 * A vCPU thread: a Deno Worker that names itself `vcpu-N`, builds the
 * machine's devices over shared state, and loops on blocking KVM_RUN,
 * handling PIO/MMIO exits right here (handing each exit to another thread
 * was measured ~9x slower). Nothing is allocated per exit on the common
 * paths. Control (pause/stop) arrives through shared words plus a kick
 * (SIGUSR2 + immediate_exit), never as a message the loop must yield for.
 *
 * @module
 */
import {
  ExitKind,
  SystemEventType,
  type VcpuBackendSpec,
  type VcpuThreadBackend,
} from "../hypervisor/types.ts";
import { Bus } from "../devices/bus.ts";
import { buildDevices, type DeviceContext, type DeviceSpec } from "../devices/device_spec.ts";
import { GuestMemory, type GuestMemoryLayout } from "../memory/guest_memory.ts";
import { gettid, SCHED_FIFO, setAffinity, setScheduler, setThreadName } from "../sys/thread.ts";
import { BigLock, type BigLockState } from "../devices/big_lock.ts";
import {
  VCPU_EXIT_KINDS,
  VCPU_EXITS,
  VCPU_STATE,
  VCPU_TID,
  VcpuRunState,
  VM_STATS_OFF,
  VmControl,
  VmState,
} from "./vm_control.ts";
import { dumpVcpu } from "./dump.ts";
import { EXIT_CODE_CRASH, EXIT_CODE_POWEROFF, EXIT_CODE_REBOOT } from "./exit_codes.ts";
import { epochMs } from "../sys/start_trace.ts";
import { importServed } from "../sys/bundle_registry.ts";

/** When this Worker's modules had loaded (start-up trace). */
const loadedAt = epochMs();

/** The init message from the main thread. */
export interface VcpuInit {
  /** The vCPU's index. */
  readonly index: number;
  /** Where this thread gets its vCPU and interrupt lines (the hypervisor backend). */
  readonly backend: VcpuBackendSpec;
  /** Guest RAM. */
  readonly memory: GuestMemoryLayout;
  /** VmControl buffer. */
  readonly control: SharedArrayBuffer;
  /** The VM's big lock. */
  readonly lock: BigLockState;
  /** Devices to build. */
  readonly devices: readonly DeviceSpec[];
  /** Guest console output fd. */
  readonly consoleFd: number;
  /** CPUs to pin this thread to. */
  readonly affinity?: readonly number[];
  /** Real-time priority (SCHED_FIFO) to take. */
  readonly rtPriority?: number;
  /** Log unclaimed port/MMIO accesses (once each). */
  readonly logUnclaimed?: boolean;
  /** What HLT does without an in-kernel irqchip: resume (tests) or stop. */
  readonly onHlt?: "resume" | "stop";
}

/** Start-up stamps of a vCPU Worker, epoch ms (see sys/start_trace.ts). */
export interface VcpuStartTimes {
  /** Its isolate was created (its performance.timeOrigin). */
  created: number;
  /** Its modules had loaded and run. */
  loaded: number;
  /** Its hypervisor backend module had loaded (and the vCPU was built). */
  backend: number;
  /** Its devices were built and it was about to wait for the go-ahead. */
  ready: number;
}

/** Messages back to the main thread. */
export type VcpuMessage =
  | { type: "ready"; tid: number; times: VcpuStartTimes }
  | { type: "exited" }
  | { type: "error"; message: string };

const post = (m: VcpuMessage) => (self as unknown as Worker).postMessage(m);

async function loadBackend(spec: VcpuBackendSpec): Promise<VcpuThreadBackend> {
  const mod = await importServed(spec.module);
  const f = mod[spec.factory] as ((data: unknown) => VcpuThreadBackend) | undefined;
  if (typeof f !== "function") {
    throw new TypeError(`vCPU backend ${spec.module} has no factory ${spec.factory}`);
  }
  return f(spec.data);
}

async function main(init: VcpuInit): Promise<void> {
  const index = init.index;
  setThreadName(`vcpu-${index}`);
  if (init.affinity) setAffinity(init.affinity);
  if (init.rtPriority) setScheduler(SCHED_FIFO, init.rtPriority);
  const ctl = new VmControl(init.control);
  const w = ctl.words;
  const stateIdx = ctl.vcpuWord(index, VCPU_STATE);
  const exitsIdx = ctl.vcpuWord(index, VCPU_EXITS);
  // Exits by kind, for statistics: one more increment per exit (stats/).
  const kindsIdx = ctl.vcpuWord(index, VCPU_EXIT_KINDS);
  const countKinds = Atomics.load(w, VM_STATS_OFF) === 0;
  const tid = gettid();
  Atomics.store(w, ctl.vcpuWord(index, VCPU_TID), tid);

  const memory = GuestMemory.fromLayout(init.memory);
  const backend = await loadBackend(init.backend);
  const backendAt = epochMs();
  const flushers: (() => void)[] = [];
  const ctx: DeviceContext = {
    memory,
    consoleFd: init.consoleFd,
    irq: (gsi) => backend.irqLine(gsi),
    events: ctl.systemEvents(),
    afterExit: (flush) => void flushers.push(flush),
  };
  const pio = new Bus();
  const mmio = new Bus();
  for (const m of await buildDevices(init.devices, ctx)) {
    (m.space === "pio" ? pio : mmio).insert(m.device, m.base, m.size);
  }
  const lock = new BigLock(init.lock);
  const vcpu = backend.vcpu;
  const logged = new Set<number>();
  const logUnclaimed = init.logUnclaimed ?? false;
  const unclaimed = (kind: string, addr: number, write: boolean) => {
    if (!logUnclaimed || logged.has(addr) || logged.size > 256) return;
    logged.add(addr);
    console.error(
      `denovmm: vcpu-${index}: unclaimed ${kind} ${write ? "write" : "read"} at 0x${
        addr.toString(16)
      }`,
    );
  };
  // Writes the guest queued in the coalesced ring (Vm.coalescePio), replayed
  // in order before this thread handles its own exit, under the big lock.
  const replayPortWrite = (port: number, data: Uint8Array) => {
    if (!pio.write(port, data)) unclaimed("port", port, true);
  };
  const coalesced = vcpu.drainCoalesced !== undefined;
  // The same for an exit that touches no device (HLT, system event,
  // shutdown): what the guest wrote before it takes effect first.
  const drainRing = () => {
    lock.lock();
    try {
      vcpu.drainCoalesced!(replayPortWrite);
    } finally {
      for (let i = 0; i < flushers.length; i++) flushers[i]();
      lock.unlock();
    }
  };

  post({
    type: "ready",
    tid,
    times: {
      created: performance.timeOrigin,
      loaded: loadedAt,
      backend: backendAt,
      ready: epochMs(),
    },
  });
  // Wait for the go-ahead (or a stop before we ever ran).
  while (Atomics.load(w, stateIdx) === VcpuRunState.Starting) {
    Atomics.wait(w, stateIdx, VcpuRunState.Starting);
  }
  // Start-up latency (DENOVMM_TRACE_START): the main thread reads this.
  ctl.markFirstRun(index, performance.timeOrigin + performance.now());

  for (;;) {
    // Clear the kick before looking at the state: a kick that lands after
    // this still finds immediate_exit set or the thread inside KVM_RUN.
    vcpu.setImmediateExit(false);
    const st = Atomics.load(w, stateIdx);
    if (st !== VcpuRunState.Running) {
      if (st === VcpuRunState.PauseRequested) {
        Atomics.compareExchange(w, stateIdx, st, VcpuRunState.Paused);
        Atomics.notify(w, stateIdx);
        Atomics.wait(w, stateIdx, VcpuRunState.Paused);
        continue;
      }
      if (st === VcpuRunState.Paused) {
        Atomics.wait(w, stateIdx, VcpuRunState.Paused);
        continue;
      }
      break; // StopRequested
    }
    if (ctl.state !== VmState.Running) break;

    const kind = vcpu.run();
    w[exitsIdx]++;
    if (countKinds) w[kindsIdx + kind]++;
    switch (kind) {
      case ExitKind.Io: {
        const port = vcpu.ioPort;
        const write = vcpu.ioIsWrite;
        const count = vcpu.ioCount;
        lock.lock();
        try {
          if (coalesced) vcpu.drainCoalesced!(replayPortWrite);
          for (let i = 0; i < count; i++) {
            const data = count === 1 ? vcpu.ioData() : vcpu.ioDataAt(i);
            if (write) {
              if (!pio.write(port, data)) unclaimed("port", port, true);
            } else if (!pio.read(port, data)) {
              data.fill(0xff);
              unclaimed("port", port, false);
            }
          }
        } finally {
          // Under the lock, so a device's output keeps the guest's order.
          for (let i = 0; i < flushers.length; i++) flushers[i]();
          lock.unlock();
        }
        break;
      }
      case ExitKind.Mmio: {
        const addr = vcpu.mmioAddr;
        const data = vcpu.mmioData();
        const write = vcpu.mmioIsWrite;
        lock.lock();
        try {
          if (coalesced) vcpu.drainCoalesced!(replayPortWrite);
          if (write) {
            if (!mmio.write(addr, data)) unclaimed("MMIO", addr, true);
          } else if (!mmio.read(addr, data)) {
            data.fill(0);
            unclaimed("MMIO", addr, false);
          }
        } finally {
          // Under the lock, so a device's output keeps the guest's order.
          for (let i = 0; i < flushers.length; i++) flushers[i]();
          lock.unlock();
        }
        break;
      }
      case ExitKind.Interrupted:
        break;
      case ExitKind.Hlt:
        if (coalesced) drainRing();
        if (init.onHlt === "stop") ctl.requestStop(VmState.PowerOff, EXIT_CODE_POWEROFF);
        break;
      case ExitKind.SystemEvent:
        if (coalesced) drainRing();
        if (vcpu.systemEventType === SystemEventType.Reset) {
          ctl.requestStop(VmState.Reset, EXIT_CODE_REBOOT);
        } else ctl.requestStop(VmState.PowerOff, EXIT_CODE_POWEROFF);
        break;
      default: {
        // A reset the guest wrote to 0xcf9 just before (reboot=pci: then a
        // triple fault) wins over the crash.
        if (coalesced) drainRing();
        if (ctl.requestStop(VmState.Crashed, EXIT_CODE_CRASH)) {
          console.error(dumpVcpu(vcpu, kind));
        }
        break;
      }
    }
  }
  ctl.markVcpuStopped(index);
  post({ type: "exited" });
}

(self as unknown as Worker).onmessage = (e: MessageEvent<VcpuInit>) => {
  const init = e.data;
  main(init).catch((err) => {
    // The report goes out first; the main thread terminates this Worker only
    // after it arrived (VcpuThread.stop), so the reason reaches the user.
    post({ type: "error", message: err instanceof Error ? err.message : String(err) });
    const ctl = new VmControl(init.control);
    ctl.requestStop(VmState.Crashed, EXIT_CODE_CRASH);
    ctl.markVcpuStopped(init.index);
  });
};
