// Run as: deno run --allow-ffi daemon_probe.ts DIR ok|fail
// With "ok", the detached copy writes DIR/pid, reports ready, then writes
// DIR/alive a moment later (after the command returned). With "fail" it
// prints an error and exits 3 before it is ready.
import { daemonize, daemonReady, daemonReadyFd } from "../daemonize.ts";
import { closeFd, O_CREAT, O_WRONLY, openFile, writeAll } from "../../sys/fd.ts";

const [dir, mode] = Deno.args;
const fd = daemonReadyFd();
if (fd === undefined) daemonize();
const put = (name: string, text: string) => {
  const f = openFile(`${dir}/${name}`, O_WRONLY | O_CREAT);
  writeAll(f, new TextEncoder().encode(text));
  closeFd(f);
};
if (mode === "fail") {
  console.error("probe: set-up failed");
  Deno.exit(3);
}
put("pid", `${Deno.pid}`);
daemonReady(fd);
console.log("this goes to /dev/null");
await new Promise((r) => setTimeout(r, 800));
put("alive", "yes");
