/**
 * Where a VMM's CPU goes during a guest's ping phase: the guest pings the
 * host over a tap (vhost off) 20 times, 0.2 s apart, and this process
 * reads every thread's CPU time (/proc/PID/task/TID/stat) when the guest
 * says the phase starts and ends, for QEMU and denovmm in the same run.
 * Prints the RTT and CPU ms per ping per thread name. Runs inside the
 * nested host where there is no /dev/kvm.
 *
 * ```sh
 * deno run -A bench/net_ping_cpu_bench.ts [--base=DIR]
 * deno run -A bench/net_ping_cpu_bench.ts --loop-only [--base=DIR] [--untracked=NS,NS]
 * ```
 *
 * `--loop-only` runs here, without KVM: the main loop alone at the same
 * pace (bench/_loop_kick_cpu.ts, a Worker's eventfd write every 200 ms), 3
 * processes per tree, and with `--untracked` for each of those
 * `untrackedYieldNs` values too: what the loop's turns to Deno cost per
 * ping apart from the device and the guest.
 *
 * @module
 */
import { kvmRoute } from "../tests/nested/route.ts";
import { runNested } from "../tests/nested/run_nested.ts";
import { L1_QEMU_BINARY } from "../tests/nested/l1_image.ts";
import { buildTestInitramfs } from "../tests/fixtures/initramfs.ts";
import { linuxFixture } from "../tests/kvm/fixtures.ts";
import { ensureHostModules, HOST_IP, hostTap, removeTap, TAP } from "../tests/kvm/_net_host.ts";

const REPO = new URL("..", import.meta.url).pathname;
const MARK = "DENOVMM-PINGCPU";
const PINGS = 20;
/** A base tree (inside this repository) whose denovmm runs too. */
const BASE = Deno.args.find((a) => a.startsWith("--base="))?.slice(7) ?? "";
const SCRIPT = `
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ping -c 2 -W 5 ${HOST_IP} > /dev/null 2>&1
echo "${MARK} start"
r=$(ping -c ${PINGS} -i 0.2 ${HOST_IP} | grep -o 'min/avg/max = [0-9./]*' | cut -d/ -f4)
echo "${MARK} end rtt=$r"
`;

if (Deno.args.includes("--loop-only")) {
  const untracked = Deno.args.find((a) => a.startsWith("--untracked="))?.slice(12).split(",") ?? [];
  for (const tree of [REPO, ...(BASE ? [BASE] : [])]) {
    for (const u of ["", ...untracked]) {
      for (let i = 0; i < 3; i++) {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--no-check", `${REPO}/bench/_loop_kick_cpu.ts`, tree, "50", u],
        }).output();
        Deno.stdout.writeSync(out.stdout);
        if (!out.success) Deno.stderr.writeSync(out.stderr);
      }
    }
  }
  Deno.exit(0);
}

if (kvmRoute() === "nested") {
  console.log("No hardware /dev/kvm here: running this benchmark inside the nested KVM host.");
  const base = BASE ? ` --base=${Deno.realPathSync(BASE)}` : "";
  const r = await runNested(`deno run --no-check -A bench/net_ping_cpu_bench.ts${base}`, {
    stream: true,
    qemu: true,
    timeoutS: 1200,
  });
  Deno.exit(r.code);
}

const f = await linuxFixture();
const initrd = await buildTestInitramfs({ modules: ["virtio_pci", "virtio_net"], script: SCRIPT });
const TICK_MS = 10; // USER_HZ 100

/** CPU ms (utime+stime) by "name/tid" for every thread of pid. */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const s = Deno.readTextFileSync(`/proc/${pid}/task/${e.name}/stat`);
      const name = s.slice(s.indexOf("(") + 1, s.lastIndexOf(")"));
      const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
      out.set(`${name}/${e.name}`, (Number(rest[11]) + Number(rest[12])) * TICK_MS);
    } catch {
      // The thread ended.
    }
  }
  return out;
}

async function run(label: string, cmd: string, args: string[]): Promise<void> {
  await hostTap();
  try {
    const child = new Deno.Command(cmd, {
      args,
      cwd: REPO,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let errText = "";
    const errDone = (async () => {
      const d = new TextDecoder();
      for await (const c of child.stderr) errText += d.decode(c, { stream: true });
    })();
    let text = "";
    let before: Map<string, number> | null = null;
    let after: Map<string, number> | null = null;
    let t0 = 0, t1 = 0;
    const dec = new TextDecoder();
    const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
    for await (const chunk of child.stdout) {
      text += dec.decode(chunk, { stream: true });
      if (!before && text.includes(`${MARK} start`)) {
        before = threadCpu(child.pid);
        t0 = performance.now();
      }
      if (before && !after && /end rtt=[\d.]+/.test(text)) {
        after = threadCpu(child.pid);
        t1 = performance.now();
        child.kill("SIGKILL");
      }
    }
    clearTimeout(timer);
    await child.status;
    await errDone;
    const rtt = /end rtt=([\d.]+)/.exec(text)?.[1];
    if (!before || !after || !rtt) {
      console.log(
        `${label}: no report\n${text.slice(-3000)}\n--- stderr ---\n${errText.slice(-3000)}`,
      );
      return;
    }
    console.log(`\n${label}: rtt ${rtt} ms, phase ${((t1 - t0) / 1000).toFixed(1)} s`);
    const rows = [...after].map(([k, v]) => [k, (v - (before!.get(k) ?? 0)) / PINGS] as const)
      .filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
    let total = 0;
    for (const [k, v] of rows) {
      total += v;
      console.log(`  ${k}: ${v.toFixed(2)} ms CPU per ping`);
    }
    console.log(`  all threads: ${total.toFixed(2)} ms CPU per ping`);
  } finally {
    removeTap();
  }
}

await ensureHostModules();
const qemu = await Deno.stat(L1_QEMU_BINARY).then(() => L1_QEMU_BINARY).catch(() =>
  "qemu-system-x86_64"
);
const cmdline = "console=ttyS0 quiet panic=-1";
const rounds = Number(Deno.args.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 1);
for (let i = 0; i < rounds; i++) {
  // deno-fmt-ignore
  await run("QEMU", qemu, [
    "-enable-kvm", "-cpu", "host", "-nographic", "-no-reboot", "-m", "256",
    "-kernel", f.kernel, "-initrd", initrd, "-append", cmdline,
    "-nic", `tap,model=virtio-net-pci,ifname=${TAP},script=no,downscript=no,vhost=off`,
  ]);
  for (const [label, tree] of [["denovmm", REPO], ...(BASE ? [["denovmm BASE", BASE]] : [])]) {
    // deno-fmt-ignore
    await run(label, Deno.execPath(), [
      "run", "--no-check", "--allow-ffi", `${tree}/main.ts`, "--memory", "256M",
      "--kernel", f.kernel, "--initrd", initrd, "--append", cmdline,
      "--nic", `tap,ifname=${TAP},vhost=off`, "--rng", "off",
    ]);
  }
}
