/**
 * The one place a machine comes to be (Firecracker's builder.rs): from a
 * {@link ResolvedConfig} it builds each virtio device model once on the
 * loop that owns it, decides the whole layout (PCI slots, BARs, GSIs, the
 * DSDT's final _PRT, e820), writes guest memory once, creates the KVM
 * objects, wires ioeventfds, irqfds and GSI routing, and spawns the vCPU
 * threads. {@link BuiltMachine.close} undoes all of it, so a reset is a
 * close and a build.
 *
 * @module
 */
import { type UnpackedKernelSource, unpackedKernelSource } from "./unpacked_kernel_source.ts";
import { Machine, setRealModeEntry, type VcpuSetup } from "../machine/machine.ts";
import { loadLinux } from "../machine/linux_boot.ts";
import { applyBootState, setBootMsrs, setupLapicLints } from "../machine/x86_cpu.ts";
import type { PcDeviceArgs } from "../machine/pc_devices.ts";
import {
  gsiRoutes,
  newIoeventfdState,
  type PciDevicesArgs,
  type PciFunctionArgs,
  syncNotifyIoeventfds,
} from "../machine/pci_devices.ts";
import { DISKS_MODULE } from "../machine/disk_open.ts";
import type { VirtioBlockBackendArgs } from "../machine/disks.ts";
import { VIRTIO_BLK_MAX_QUEUES } from "../devices/virtio/block.ts";
import { AcpiPm, createLegacyState, I8042, LEGACY_GSI, Serial } from "../devices/legacy/mod.ts";
import { FRAMEBUFFER_SLOT, type LinearFramebuffer } from "../devices/display/linear_framebuffer.ts";
import { BOCHS_MMIO_BAR, BOCHS_MMIO_SIZE, BochsDisplay } from "../devices/display/bochs_display.ts";
import type { DeviceSpec } from "../devices/device_spec.ts";
import { PciBarAllocator } from "../devices/pci/bar_allocator.ts";
import { PciHostBridge } from "../devices/pci/host_bridge.ts";
import { PciBus } from "../devices/pci/pci_bus.ts";
import {
  PCI_COMMAND,
  PCI_COMMAND_MEMORY,
  PCI_CONFIG_ADDRESS_PORT,
} from "../devices/pci/constants.ts";
import { VirtioPciDevice, type VirtioPciSpec } from "../devices/virtio/pci.ts";
import { KvmIrqLine } from "../kvm/vm.ts";
import type { MainLoop } from "../mainloop/main_loop.ts";
import { IOThread } from "../mainloop/iothread.ts";
import { closeFd, eventFd } from "../sys/fd.ts";
import type { VirtioFunctionConfig } from "./config.ts";
import { FIRST_PCI_SLOT, pciIrqRoutesFor, planPciFunctions } from "./layout.ts";
import type { ResolvedConfig } from "./resolve.ts";
import { attachVirtioBackend, prepareVirtioBackend, stopVirtioBackend } from "./virtio_backend.ts";
import { consoleInput, netFunctionsOf } from "./net_devices.ts";
import { NET_BACKEND_MODULE } from "../devices/virtio/nic_open.ts";
import { traceMark } from "../sys/start_trace.ts";
import { INPUT_MODULE, type VirtioInput, virtioInputById } from "../devices/virtio/input.ts";

const PC_DEVICES = new URL("../machine/pc_devices.ts", import.meta.url).href;
const PCI_DEVICES = new URL("../machine/pci_devices.ts", import.meta.url).href;
const VIRTIO_BACKEND = new URL("./virtio_backend.ts", import.meta.url).href;

/** A built machine: ready to run, and to be taken apart. */
export interface BuiltMachine {
  /** KVM, RAM, vCPU threads (set up, not started). */
  readonly machine: Machine;
  /** COM1 as seen from the main thread (enqueueInput). */
  readonly serial: Serial;
  /** ACPI PM as seen from the main thread (pressPowerButton). */
  readonly acpiPm: AcpiPm;
  /** The i8042 as seen from the main thread (pushKeyboard, under the big lock). */
  readonly i8042: I8042;
  /** The iothreads, by index. */
  readonly iothreads: ReadonlyMap<number, IOThread>;
  /** Input to the virtio console (hvc0) when there is one: it replaces COM1's. */
  readonly consoleInput?: (bytes: Uint8Array) => number;
  /** The virtio tablet, when there is one (main loop: VNC pointer events feed it). */
  readonly tablet?: () => VirtioInput | undefined;
  /** Each PCI function: its name, slot and owning thread. */
  readonly pciFunctions: readonly { name: string; slot: number; iothread?: number }[];
  /** Stops backends and iothreads, closes fds, KVM and RAM (after the vCPUs stopped). */
  close(): Promise<void>;
}

/** What the builder gets from the VM around it. */
export interface BuildEnv {
  /** The main loop (outlives the machine). */
  readonly loop: MainLoop;
  /** Where vCPU threads write guest console bytes. */
  readonly consoleFd: number;
  /** Video memory to map and announce (owned by the Vm: it outlives resets). */
  readonly framebuffer?: LinearFramebuffer;
}

let nextBackendId = 0;

interface Placed {
  name: string;
  id: number;
  io?: IOThread;
  iothread?: number;
  spec: VirtioPciSpec;
}

let nextTabletId = 0;

function functionsOf(
  rc: ResolvedConfig,
  net: VirtioFunctionConfig[],
  tabletId: number | undefined,
): VirtioFunctionConfig[] {
  const disks = rc.disks.map((d, i): VirtioFunctionConfig => {
    const args: VirtioBlockBackendArgs = {
      disk: { fd: d.file.fd, size: d.file.size, readOnly: d.file.readOnly },
      serial: d.options.serial,
      aio: rc.syncDiskIo ? "sync" : d.options.aio,
      // One queue per vCPU by default, as QEMU's virtio-blk-pci (num-queues=auto).
      numQueues: d.options.numQueues ?? Math.min(rc.cpus, VIRTIO_BLK_MAX_QUEUES),
    };
    return {
      module: DISKS_MODULE,
      factory: "virtioBlockBackend",
      args,
      iothread: d.options.iothread,
      name: `virtio-blk${i}`,
    };
  });
  // The tablet on the main loop, where the VNC server feeds it in-thread.
  const tablet: VirtioFunctionConfig[] = tabletId === undefined ? [] : [{
    module: INPUT_MODULE,
    factory: "virtioTabletBackend",
    args: { id: tabletId },
    name: "virtio-tablet0",
  }];
  return [...disks, ...net, ...tablet, ...rc.virtio];
}

/**
 * Builds a machine from a resolved configuration.
 *
 * @param rc what to build
 * @param env the main loop and console fd
 * @returns the machine, set up and not yet running
 * @example
 * ```ts ignore
 * const built = await buildMachine(resolveConfig(config), { loop, consoleFd: 1 });
 * const exit = await built.machine.run();
 * await built.close();
 * ```
 */
export async function buildMachine(rc: ResolvedConfig, env: BuildEnv): Promise<BuiltMachine> {
  const iothreads = new Map<number, IOThread>();
  const placed: Placed[] = [];
  const fds: number[] = [];
  let machine: Machine | undefined;
  // The unpacked kernel, from the cache (or, with none, unpacked on Deno's
  // pool), beside everything up to its load (step 6); a miss boots the
  // bzImage as it is and fills the cache in the background.
  const unpacking = rc.kernel && rc.unpackKernel && rc.kernelFile
    ? unpackKernel(rc.kernelFile.path, rc.kernelFile.stamp, rc.kernel)
    : undefined;
  let unpackedClosed: Promise<void> | undefined;
  const closeUnpacked = () =>
    unpackedClosed ??= unpacking?.then((u) => u?.close()) ?? Promise.resolve();
  const close = async () => {
    // Never before the pool is done with the bzImage's bytes.
    await closeUnpacked();
    for (const p of placed) {
      if (p.io) await p.io.call(VIRTIO_BACKEND, "stopVirtioBackend", p.id).catch(() => {});
      else await stopVirtioBackend(env.loop, p.id);
    }
    placed.length = 0;
    for (const io of iothreads.values()) await io.stop();
    iothreads.clear();
    for (const fd of fds) closeFd(fd);
    fds.length = 0;
    await machine?.close();
    machine = undefined;
    Machine.discardPrestarted();
  };
  try {
    // 1. Each device model, once, on its loop: its shape decides the layout.
    const net = netFunctionsOf(rc.net, env.consoleFd);
    const tabletId = rc.tablet ? nextTabletId++ : undefined;
    const fns = functionsOf(rc, net.functions, tabletId);
    // 0. The vCPU Workers start loading now, on their own threads, while
    // this one builds the rest (the longest step before the first KVM_RUN).
    const pci = fns.length > 0 || env.framebuffer !== undefined;
    Machine.prestart(rc.cpus, [PC_DEVICES, ...pci ? [PCI_DEVICES] : []]);
    // The disk and NIC models are not in the start-up graph (disk_open.ts,
    // nic_open.ts); imported by their literal paths they are in the module
    // graph, so the main loop's factories get these very instances, without
    // read permission (sys/worker_url.ts would serve copies).
    const onMainLoop = (m: string) => fns.some((f) => f.iothread === undefined && f.module === m);
    if (onMainLoop(DISKS_MODULE)) await import("../machine/disks.ts");
    if (onMainLoop(NET_BACKEND_MODULE)) await import("../devices/virtio/net_backend.ts");
    for (const [i, f] of fns.entries()) {
      const id = nextBackendId++;
      const a = { id, module: f.module, factory: f.factory, args: f.args };
      let io: IOThread | undefined;
      let spec: VirtioPciSpec;
      if (f.iothread === undefined) spec = await prepareVirtioBackend(env.loop, a);
      else {
        io = iothreads.get(f.iothread);
        if (!io) {
          io = await IOThread.start({ name: `iothread-${f.iothread}` });
          iothreads.set(f.iothread, io);
        }
        spec = await io.call<VirtioPciSpec>(VIRTIO_BACKEND, "prepareVirtioBackend", a);
      }
      placed.push({ name: f.name ?? `virtio${i}`, id, io, iothread: f.iothread, spec });
    }
    traceMark("virtio device models prepared");
    // 2. The layout, whole: slots, INTx and MSI GSIs, the _PRT.
    const plan = planPciFunctions(placed.map((p) => p.spec.msixVectors ?? p.spec.numQueues + 1));
    const prt = pciIrqRoutesFor(plan.map((p) => p.slot));

    // 3. KVM and RAM (guest memory is written once, in step 6).
    const m = machine = Machine.create({
      memoryBytes: rc.memoryBytes,
      cpus: rc.cpus,
      irqchip: rc.irqchip,
      consoleFd: env.consoleFd,
      logUnclaimed: rc.logUnclaimed,
      affinity: rc.placement.vcpuAffinity,
      rtPriority: rc.placement.vcpuFifoPriority,
      kvmPath: rc.kvmPath,
      loop: env.loop,
    });
    const fb = env.framebuffer;
    if (fb) {
      m.vm.setUserMemoryRegion(FRAMEBUFFER_SLOT, fb.region);
      // A reset boots in the configured mode, whatever the guest's display driver set.
      if (rc.display) fb.setMode(rc.display.width, rc.display.height);
    }
    // The kernel and initrd are written into guest RAM while the vCPU
    // Workers start (step 6): only their registers depend on where it went.
    const loadGuest = async (): Promise<VcpuSetup> => {
      if (rc.kernel) {
        const kernel = rc.kernel;
        const unpacked = await unpacking;
        let boot;
        try {
          boot = loadLinux(m.memory, {
            kernel,
            initrd: rc.initrd,
            cmdline: rc.cmdline,
            cpus: rc.cpus,
            pci: placed.length > 0 || fb !== undefined,
            pciIrqRoutes: prt,
            framebuffer: env.framebuffer?.info,
            unpacked,
          });
        } finally {
          closeUnpacked();
        }
        // What the loader did: it boots the bzImage as it is when the unpacked kernel does not fit it.
        traceMark(
          boot.unpacked && unpacked
            ? `kernel (unpacked: ${unpacked.origin}) and initrd loaded into guest RAM`
            : "kernel and initrd loaded into guest RAM",
        );
        return (v, i) => {
          setBootMsrs(v);
          v.setFpu();
          setupLapicLints(v);
          if (i === 0) applyBootState(v, boot.cpu);
        };
      }
      const flat = rc.flat!;
      m.memory.write(flat.loadAddr, flat.code);
      return (v, i) => setRealModeEntry(v, i, flat.entry);
    };

    // 4. PC platform devices over shared state.
    const low = m.memory.layout.regions[0].size;
    const legacy = createLegacyState({
      lock: m.lockState,
      memoryBelow4g: low,
      memoryAbove4g: m.memory.size - low,
      cpus: rc.cpus,
    });
    const pcArgs: PcDeviceArgs = { legacy };
    const specs: DeviceSpec[] = [{ module: PC_DEVICES, factory: "pcDevices", args: pcArgs }];

    // 5. PCI functions: registers, BARs, eventfds, one GSI routing table, irqfds.
    if (placed.length > 0 || fb) {
      const newFd = () => {
        const fd = eventFd();
        fds.push(fd);
        return fd;
      };
      const bus = new PciBus({ hostBridge: new PciHostBridge() });
      const allocator = new PciBarAllocator();
      const functions: PciFunctionArgs[] = [];
      const routed: { device: VirtioPciDevice; msiGsiBase: number }[] = [];
      placed.forEach((p, i) => {
        const where = plan[i];
        const transport = new VirtioPciDevice(p.spec);
        allocator.assign(transport);
        bus.add(transport, where.slot);
        const fn: PciFunctionArgs = {
          spec: p.spec,
          state: transport.sharedState,
          slot: where.slot,
          notifyFds: Array.from({ length: p.spec.numQueues }, newFd),
          controlFd: newFd(),
          intxGsi: where.intxGsi,
          msiGsiBase: where.msiGsiBase,
          msixFds: Array.from({ length: transport.msix.vectors }, newFd),
          ioeventfdBase: newIoeventfdState(),
        };
        functions.push(fn);
        routed.push({ device: transport, msiGsiBase: fn.msiGsiBase });
        syncNotifyIoeventfds(m.vm, fn, transport);
      });
      m.vm.setGsiRouting(gsiRoutes(routed));
      for (const f of functions) f.msixFds.forEach((fd, v) => m.vm.irqfd(fd, f.msiGsiBase + v));
      for (const [i, p] of placed.entries()) {
        const a = { id: p.id, memory: m.memory.layout, vmFd: m.vm.fd, fn: functions[i] };
        if (p.io) await p.io.call(VIRTIO_BACKEND, "attachVirtioBackend", a);
        else await attachVirtioBackend(env.loop, a);
      }
      // The Bochs display after the virtio functions: BAR 0 is the video
      // memory's slot (where screen_info's efifb is too), BAR 2 its registers.
      let display: PciDevicesArgs["display"];
      if (fb) {
        const vga = new BochsDisplay({ geometry: fb.geometry, vramSize: fb.size });
        vga.setBarAddress(0, fb.gpa);
        vga.setBarAddress(BOCHS_MMIO_BAR, allocator.allocateMmio(BOCHS_MMIO_SIZE));
        // Decoding, as firmware leaves the boot display: Linux's efifb refuses a
        // framebuffer inside a disabled device's BAR ("device is disabled").
        vga.configWrite(PCI_COMMAND, new Uint8Array([PCI_COMMAND_MEMORY, 0]));
        const slot = FIRST_PCI_SLOT + placed.length;
        bus.add(vga, slot);
        display = { state: vga.sharedState, geometry: fb.geometry, vramSize: fb.size, slot };
      }
      const args: PciDevicesArgs = {
        vmFd: m.vm.fd,
        addressState: bus.addressState,
        hostBridge: bus.hostBridge.state(),
        functions,
        display,
      };
      specs.push({ module: PCI_DEVICES, factory: "pciDevices", args });
      // CONFIG_ADDRESS only latches what the next CONFIG_DATA access, which
      // exits, uses: its writes queue in KVM's ring, and a configuration
      // read costs one exit instead of two (Linux reads thousands at boot;
      // on AMD family 0xf-0x11, the nested host's CPU, its GART aperture
      // search reads every slot of all 256 buses, twice). QEMU's q35
      // coalesces the same 4 ports. They hold 0xcf9 too: a reset written
      // there takes effect at that vCPU's next exit of any kind, which
      // Linux's reboot paths make at once (the i8042, or a triple fault).
      m.vm.coalescePio(PCI_CONFIG_ADDRESS_PORT, 4);
    }
    for (const d of [...specs, ...rc.devices]) m.addDevice(d);
    traceMark("platform and PCI devices wired");

    // 6. vCPUs: their threads (which build the devices), the guest loaded
    // meanwhile, then their state.
    await m.setup({ prepare: loadGuest });

    // The main thread's handles on COM1 (input) and ACPI PM (power button).
    const irq = (gsi: number) => rc.irqchip ? new KvmIrqLine(m.vm.fd, gsi) : { set() {} };
    const serial = new Serial(legacy.serial, {
      irq: irq(LEGACY_GSI.COM1),
      sink: () => {},
      lock: m.lock,
    });
    const acpiPm = new AcpiPm(legacy.ports, {
      events: m.control.systemEvents(),
      sci: irq(LEGACY_GSI.SCI),
    });
    const i8042 = new I8042(legacy.i8042, {
      kbdIrq: irq(LEGACY_GSI.KBD),
      auxIrq: irq(LEGACY_GSI.AUX),
      events: m.control.systemEvents(),
    });
    return {
      machine: m,
      serial,
      acpiPm,
      i8042,
      iothreads,
      pciFunctions: placed.map((p, i) => ({
        name: p.name,
        slot: plan[i].slot,
        iothread: p.iothread,
      })),
      consoleInput: net.consoleId === undefined ? undefined : consoleInput(net.consoleId),
      tablet: tabletId === undefined ? undefined : () => virtioInputById(tabletId),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The kernel unpacked on the host (vm/unpacked_kernel_source.ts), or
 * undefined to boot the bzImage as it is; a failure to unpack says so once
 * and leaves the decompression to the guest.
 */
async function unpackKernel(
  path: string,
  stamp: string | undefined,
  kernel: Uint8Array,
): Promise<UnpackedKernelSource | undefined> {
  try {
    return await unpackedKernelSource(path, stamp, kernel);
  } catch (e) {
    console.error(
      `denovmm: warning: could not unpack the kernel ${path} (${
        e instanceof Error ? e.message : e
      }); the guest decompresses it`,
    );
    return undefined;
  }
}
