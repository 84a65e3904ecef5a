/**
 * A kernel smoke test written against denovmm's public API, the way a
 * kernel or distro test suite would script a VM: boot a kernel with an
 * initramfs whose console runs a shell, wait for the prompt, type a
 * command, check what it prints, and power the guest off.
 *
 *     deno run --allow-ffi examples/linux_smoke.ts bzImage initrd.img [PROMPT]
 *
 * The initramfs must give a shell on ttyS0 that prints PROMPT (default
 * `smoke# `) and powers off when the shell exits. Prints one line of
 * results and exits 0 when every check passed.
 *
 * @module
 */
import { createVm, type VmExit } from "../mod.ts";

/** What the smoke test saw. */
export interface SmokeResult {
  /** `uname -r` typed at the prompt. */
  release: string;
  /** The guest's answer to `echo $((6 * 7))`. */
  answer: string;
  /** How the VM ended. */
  end: VmExit;
  /** Seconds from createVm to the end. */
  seconds: number;
}

/**
 * Boots, types two commands, checks their output and powers off.
 *
 * @param options kernel and initrd paths, the shell prompt, the time limit
 * @returns what was seen
 * @example
 * ```ts ignore
 * const r = await smoke({ kernel: "bzImage", initrd: "initrd.img" });
 * console.log(r.release, r.end.reason);
 * ```
 */
export async function smoke(
  options: { kernel: string; initrd: string; prompt?: string; timeoutMs?: number },
): Promise<SmokeResult> {
  const t0 = performance.now();
  const prompt = options.prompt ?? "smoke# ";
  const timeoutMs = options.timeoutMs ?? 120_000;
  await using vm = await createVm({
    kernel: options.kernel,
    initrd: options.initrd,
    append: "console=ttyS0 panic=-1 quiet",
    cpus: 2,
    memory: "256M",
  });
  await vm.start();
  await vm.serial.waitFor(prompt, { timeoutMs });
  await vm.serial.write("uname -r\n");
  const release = (await vm.serial.waitFor(/^(\d+\.\d+\S*)\r?\n/m, { timeoutMs }))[1];
  await vm.serial.waitFor(prompt, { timeoutMs });
  await vm.serial.write("echo $((6 * 7))\n");
  const answer = (await vm.serial.waitFor(/^(\d+)\r?\n/m, { timeoutMs }))[1];
  await vm.serial.waitFor(prompt, { timeoutMs });
  await vm.serial.write("exit\n");
  const end = await vm.wait();
  return { release, answer, end, seconds: (performance.now() - t0) / 1000 };
}

if (import.meta.main) {
  const [kernel, initrd, prompt] = Deno.args;
  if (!kernel || !initrd) {
    console.error("usage: deno run --allow-ffi examples/linux_smoke.ts bzImage initrd [PROMPT]");
    Deno.exit(2);
  }
  const r = await smoke({ kernel, initrd, prompt });
  const ok = r.answer === "42" && r.end.reason === "poweroff" && r.end.exitCode === 0;
  console.log(
    `smoke: release=${r.release} answer=${r.answer} end=${r.end.reason} exit=${r.end.exitCode} ` +
      `seconds=${r.seconds.toFixed(1)} ${ok ? "PASS" : "FAIL"}`,
  );
  Deno.exit(ok ? 0 : 1);
}
