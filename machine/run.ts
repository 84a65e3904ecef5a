/**
 * Running a machine from the CLI's options: the demo guest, or a Linux
 * kernel with its console on this terminal. Returns the process exit code;
 * the terminal is restored on every path.
 *
 * @module
 */
import { Machine, setRealModeEntry } from "./machine.ts";
import { DEFAULT_CMDLINE, loadLinux } from "./linux_boot.ts";
import { applyBootState, setBootMsrs, setupLapicLints } from "./x86_cpu.ts";
import type { VmOptions } from "./cli.ts";
import type { PcDeviceArgs } from "./pc_devices.ts";
import { createLegacyDevices, createLegacyState } from "../devices/legacy/mod.ts";
import { KvmIrqLine } from "../kvm/vm.ts";
import { MainLoop } from "../mainloop/main_loop.ts";
import { Terminal } from "../ui/terminal.ts";
import { demoGuest } from "../guests/demo.ts";
import { GUEST_MIN_RAM } from "../guests/guest.ts";
import { VmState } from "../vcpu/shared_state.ts";
import { EXIT_CODE_CRASH, EXIT_CODE_STOPPED } from "../vcpu/exit_codes.ts";
import { buildAcpiTables } from "../acpi/tables.ts";
import { attachDisks, type AttachedDisks, type OpenedDisk, pciIrqRoutesFor } from "./disks.ts";
import { traceMark } from "../sys/start_trace.ts";

const PC_DEVICES = new URL("./pc_devices.ts", import.meta.url).href;

function pcSpec(m: Machine, cpus: number) {
  const low = m.memory.layout.regions[0].size;
  const legacy = createLegacyState({
    lock: m.lockState,
    memoryBelow4g: low,
    memoryAbove4g: m.memory.size - low,
    cpus,
  });
  const args: PcDeviceArgs = { legacy };
  return { legacy, spec: { module: PC_DEVICES, factory: "pcDevices", args } };
}

/**
 * Boots the bundled demo guest: a banner on COM1, then ACPI power-off.
 *
 * @param o CLI options (memory, cpus are honoured)
 * @returns the exit code
 */
export async function runDemo(o: VmOptions): Promise<number> {
  const guest = demoGuest();
  const m = Machine.create({
    memoryBytes: Math.max(o.memoryBytes, GUEST_MIN_RAM),
    cpus: 1,
    logUnclaimed: o.logUnclaimed,
  });
  try {
    const { spec } = pcSpec(m, 1);
    m.addDevice(spec);
    m.memory.write(guest.loadAddr, guest.code);
    await m.setup((v, i) => setRealModeEntry(v, i, guest.entry));
    const exit = await m.run();
    for (const e of exit.errors) console.error(`denovmm: ${e}`);
    return exit.exitCode;
  } finally {
    m.close();
  }
}

/**
 * Boots a Linux kernel with the serial console on the terminal (stdin in
 * raw mode, Ctrl-A x quits). With `--reboot`, a guest reboot starts it again.
 *
 * @param o CLI options
 * @param files the kernel and initrd bytes
 * @returns the exit code
 */
export async function runLinux(
  o: VmOptions,
  files: { kernel: Uint8Array; initrd?: Uint8Array; disks?: readonly OpenedDisk[] },
): Promise<number> {
  for (;;) {
    const { state, exitCode } = await bootOnce(o, files);
    if (state === VmState.Reset && o.reboot) continue;
    return exitCode;
  }
}

async function bootOnce(
  o: VmOptions,
  files: { kernel: Uint8Array; initrd?: Uint8Array; disks?: readonly OpenedDisk[] },
): Promise<{ state: VmState; exitCode: number }> {
  const m = Machine.create({
    memoryBytes: o.memoryBytes,
    cpus: o.cpus,
    irqchip: true,
    logUnclaimed: o.logUnclaimed,
  });
  const loop = new MainLoop();
  let term: Terminal | undefined;
  let disks: AttachedDisks | undefined;
  try {
    const withDisks = (files.disks?.length ?? 0) > 0;
    const boot = loadLinux(m.memory, {
      kernel: files.kernel,
      initrd: files.initrd,
      cmdline: o.append ?? DEFAULT_CMDLINE,
      cpus: o.cpus,
      pci: withDisks,
    });
    traceMark("kernel and initrd loaded into guest RAM");
    const { legacy, spec } = pcSpec(m, o.cpus);
    m.addDevice(spec);
    if (withDisks) {
      disks = await attachDisks(m, loop, files.disks!);
      traceMark("disks attached");
      // The same tables at the same place, now with the root bridge's _PRT
      // (loadLinux only knows whether there is a PCI bus).
      const acpi = buildAcpiTables(m.memory, {
        cpus: o.cpus,
        pci: true,
        pciIrqRoutes: pciIrqRoutesFor(disks.slots),
      });
      if (acpi.rsdp !== boot.rsdp) throw new Error("ACPI tables moved while adding the _PRT");
    }
    await m.setup((v, i) => {
      setBootMsrs(v);
      v.setFpu();
      setupLapicLints(v);
      if (i === 0) applyBootState(v, boot.cpu);
    });
    // The main thread's view of the same devices: stdin goes into COM1's FIFO.
    const devices = createLegacyDevices(legacy, {
      irq: (gsi) => new KvmIrqLine(m.vm.fd, gsi),
      sink: () => {},
      events: m.control.systemEvents(),
    });
    term = new Terminal({
      loop,
      onInput: (bytes) => devices.serial.enqueueInput(bytes),
      onQuit: () => m.stop(EXIT_CODE_STOPPED),
      retryMs: 5,
    });
    term.start();
    const looping = loop.run();
    const exit = await m.run();
    // Backends finish their in-flight I/O on the loop before it stops.
    await disks?.close();
    disks = undefined;
    loop.stop();
    await looping;
    for (const e of exit.errors) console.error(`denovmm: ${e}`);
    return { state: exit.state, exitCode: exit.errors.length ? EXIT_CODE_CRASH : exit.exitCode };
  } finally {
    term?.close();
    await disks?.close();
    loop.close();
    m.close();
  }
}
