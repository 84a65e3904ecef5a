/**
 * `npm run demo` / `deno task demo`: boots the bundled demo guest with
 * `deno run --allow-ffi main.ts`: directly where this host has hardware KVM,
 * otherwise inside the nested KVM host (QEMU's emulator providing KVM), so
 * it works on any Linux machine with Node.js.
 *
 * @module
 */
import { kvmRoute } from "../tests/nested/route.ts";
import { NestedHostError, runNested } from "../tests/nested/run_nested.ts";

const repo = new URL("..", import.meta.url).pathname;
const route = kvmRoute();
if (route === "direct") {
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", "main.ts", ...Deno.args],
    cwd: repo,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  Deno.exit(code);
}
function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
const why = !exists("/dev/kvm")
  ? "/dev/kvm is missing"
  : exists("/sys/module/kvm_pvm")
  ? "/dev/kvm is PVM, not a faithful x86"
  : "/dev/kvm is not usable";
console.log(
  `denovmm: no usable hardware KVM here (${why}): running the demo inside a nested KVM host (QEMU emulation; about a minute)`,
);
// Kill QEMU (and remove its run directory) rather than orphan it when interrupted.
const abort = new AbortController();
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => abort.abort());
}
// One L1 CPU, as the KVM test suite's hosts have: the demo guest has one
// vCPU, and the emulated nested SVM has hung hosts with two L1 CPUs (the
// boot bench's QEMU and denovmm boots alike), never with one. A host that
// still hangs (silent for 3 minutes; the demo takes well under one) is
// replaced once.
for (let attempt = 1;; attempt++) {
  try {
    const r = await runNested("deno run --no-check --allow-ffi main.ts", {
      stream: true,
      cpus: 1,
      idleTimeoutS: 180,
      signal: abort.signal,
    });
    Deno.exit(r.code);
  } catch (e) {
    if (abort.signal.aborted) {
      console.error("denovmm: demo interrupted; the nested host was stopped");
      Deno.exit(130);
    }
    if (!(e instanceof NestedHostError) || attempt === 2) throw e;
    console.log(
      `denovmm: the nested KVM host failed (${e.message.split("\n")[0]}); starting a fresh one`,
    );
  }
}
