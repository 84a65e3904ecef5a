/**
 * Runs a project test guest on KVM and collects its console output and exit.
 *
 * @module
 */
import { Machine, setRealModeEntry } from "../../machine/machine.ts";
import type { Guest } from "../../guests/guest.ts";
import { closeFd, O_CREAT, O_RDWR, O_TRUNC, openFile } from "../../sys/fd.ts";
import type { VmState } from "../../vcpu/vm_control.ts";

/** What a guest run produced. */
export interface GuestRun {
  /** Console bytes as text. */
  output: string;
  /** Process exit code the VMM would report. */
  exitCode: number;
  /** Final VM state. */
  state: VmState;
  /** Milliseconds from start to stop. */
  ms: number;
  /** vCPU thread errors. */
  errors: string[];
}

/**
 * Boots a flat guest with the test devices (echo MMIO, debug exit, raw COM1).
 *
 * @param guest the image
 * @param options vCPUs and memory
 * @returns output and exit
 */
export async function runGuest(
  guest: Guest,
  options: { cpus?: number; memoryBytes?: number; timeoutMs?: number } = {},
): Promise<GuestRun> {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-guest-" });
  const outPath = `${dir}/console`;
  const fd = openFile(outPath, O_RDWR | O_CREAT | O_TRUNC);
  const m = Machine.create({
    memoryBytes: options.memoryBytes ?? 2 << 20,
    cpus: options.cpus ?? 1,
    consoleFd: fd,
    onHlt: "resume",
    devices: [{
      module: new URL("./test_devices.ts", import.meta.url).href,
      factory: "testDevices",
      args: { echo: new SharedArrayBuffer(4), rawConsolePort: 0x3f8, debugExit: true },
    }],
  });
  try {
    m.memory.write(guest.loadAddr, guest.code);
    await m.setup((v, i) => setRealModeEntry(v, i, guest.entry));
    const t0 = performance.now();
    const timer = setTimeout(() => m.stop(99), options.timeoutMs ?? 60_000);
    const exit = await m.run();
    clearTimeout(timer);
    const ms = performance.now() - t0;
    const output = await Deno.readTextFile(outPath);
    return { output, exitCode: exit.exitCode, state: exit.state, ms, errors: exit.errors };
  } finally {
    await m.close();
    closeFd(fd);
    await Deno.remove(dir, { recursive: true });
  }
}
