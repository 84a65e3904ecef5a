/**
 * `npm run demo` / `deno task demo`: boots the bundled demo guest with
 * `deno run --allow-ffi main.ts`: directly where this host has hardware KVM,
 * otherwise inside the nested KVM host (QEMU's emulator providing KVM), so
 * it works on any Linux machine with Node.js.
 *
 * @module
 */
import { kvmRoute } from "../tests/nested/route.ts";
import { runNested } from "../tests/nested/run_nested.ts";

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
const r = await runNested("deno run --no-check --allow-ffi main.ts", { stream: true });
Deno.exit(r.code);
