/**
 * The denovmm command line:
 *
 *   deno run --allow-ffi main.ts --kernel bzImage [--initrd F] [--append S]
 *     [--cpus N] [--memory SIZE] [--disk SPEC]...
 *
 * Flags become a VmConfig, the builder makes the VM, the terminal is its
 * serial console. With no --kernel it boots the bundled demo guest. The
 * only reader of Deno.args.
 *
 * @module
 */
import { parseCli, USAGE, UsageError, type VmOptions } from "./machine/cli.ts";
import { vmConfigFromCli } from "./machine/cli_config.ts";
import { describeKvmOpenError } from "./machine/kvm_errors.ts";
import { createVm, type Vm } from "./vm/vm.ts";
import { VmConfigError } from "./vm/config.ts";
import { ErrnoError } from "./sys/errno.ts";
import { Terminal } from "./ui/terminal.ts";
import { EXIT_CODE_CRASH, EXIT_CODE_USAGE } from "./vcpu/exit_codes.ts";

/** The version printed by --version. */
export const VERSION = "0.1.0";

function fail(message: string, code = EXIT_CODE_USAGE): never {
  console.error(`denovmm: ${message}`);
  Deno.exit(code);
}

async function run(vm: Vm): Promise<number> {
  const term = new Terminal({
    loop: vm.loop,
    onInput: (bytes) => vm.serial.offer(bytes),
    onQuit: () => vm.stop(),
    retryMs: 5,
  });
  try {
    term.start();
    await vm.start();
    const end = await vm.wait();
    for (const e of end.errors) console.error(`denovmm: ${e}`);
    return end.exitCode;
  } finally {
    term.close();
    await vm.close();
  }
}

async function main(args: string[]): Promise<number> {
  let o: VmOptions;
  try {
    o = parseCli(args);
  } catch (e) {
    if (e instanceof UsageError) fail(e.message);
    throw e;
  }
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  if (o.version) {
    console.log(`denovmm ${VERSION} (deno ${Deno.version.deno})`);
    return 0;
  }
  let vm: Vm;
  try {
    vm = await createVm(vmConfigFromCli(o));
  } catch (e) {
    if (e instanceof VmConfigError) fail(e.message);
    const kvm = describeKvmOpenError(e);
    if (kvm) fail(kvm);
    if (e instanceof ErrnoError) fail(e.message, EXIT_CODE_CRASH);
    throw e;
  }
  return await run(vm);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
