// Operating a Linux guest over QMP, as `deno run --allow-ffi main.ts` with
// 2 vCPUs, -S, --vcpu-affinity and --sched: the placement is read back per
// vCPU thread id from query-cpus-fast; cont starts the guest; stop freezes
// a counter the guest prints and cont lets it run on; system_powerdown
// presses the ACPI power button and busybox acpid powers the guest off.
// A second test quits over QMP right after the guest synced a file to its
// disk, and a fresh boot finds the file intact.
import assert from "node:assert/strict";
import { buildTestInitramfs } from "../fixtures/initramfs.ts";
import { DISK_MARKER, diskInitramfs, linuxFixture } from "./fixtures.ts";
import { TestClient } from "../../qmp/_test_client.ts";
import { type RunningVmm, startVmm } from "./_vmm_process.ts";

const M = "DENOVMM-QMP";

/**
 * Counts on the console; acpid runs the power button's script (acpid's
 * children have no console of their own: the script writes to /dev/console).
 */
export const ACPID_SCRIPT = `
mkdir -p /etc/acpi/PWRF /var/log
printf '#!/bin/sh\\necho ${M} power-button > /dev/console\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
acpid -l /tmp/acpid.log
echo "${M} inputs=$(ls /dev/input | tr '\\n' ' ')"
i=0
while :; do i=$((i+1)); echo "${M} tick=$i"; sleep 1; done
`;

interface QmpVmm {
  vmm: RunningVmm;
  sock: string;
  dir: string;
}

/** Starts the VMM with a QMP socket in a fresh directory. */
function spawnVmm(args: string[]): QmpVmm {
  const dir = Deno.makeTempDirSync({ prefix: "denovmm-qmp-" });
  const sock = `${dir}/qmp.sock`;
  const vmm = startVmm([...args, "-qmp", `unix:${sock},server,wait=off`], { timeoutMs: 600_000 });
  return { vmm, sock, dir };
}

async function until<T>(what: string, fn: () => T | undefined, ms = 180_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function connect(sock: string): Promise<TestClient> {
  await until("the QMP socket", () => {
    try {
      return Deno.lstatSync(sock).isSocket || undefined;
    } catch {
      return undefined;
    }
  }, 60_000);
  const c = new TestClient(sock);
  assert.ok("QMP" in await c.next(30_000));
  assert.deepEqual(await c.call("qmp_capabilities"), { return: {} });
  return c;
}

function lastTick(text: string): number {
  const all = [...text.matchAll(new RegExp(`${M} tick=(\\d+)`, "g"))];
  return all.length ? Number(all[all.length - 1][1]) : 0;
}

function threadFacts(pid: number, tid: number) {
  const status = Deno.readTextFileSync(`/proc/${pid}/task/${tid}/status`);
  const stat = Deno.readTextFileSync(`/proc/${pid}/task/${tid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    cpus: /Cpus_allowed_list:\s*(\S+)/.exec(status)![1],
    name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
    nice: Number(f[16]),
    rtprio: Number(f[37]),
    policy: Number(f[38]),
  };
}

Deno.test("QMP drives a 2-vCPU Linux guest: placement, -S/cont, stop/cont, powerdown", async () => {
  const f = await linuxFixture();
  const initrd = await buildTestInitramfs({ modules: ["evdev", "button"], script: ACPID_SCRIPT });
  const last = navigator.hardwareConcurrency - 1;
  const vmm = spawnVmm([
    "-kernel",
    f.kernel,
    "-initrd",
    initrd,
    "-append",
    "console=ttyS0 panic=-1 quiet",
    "-smp",
    "2",
    "-m",
    "256M",
    "-S",
    "--vcpu-affinity",
    `0=0,1=${last}`,
    "--sched",
    "vcpu-0=fifo:5,vcpu-1=nice:3",
    "--stats-interval",
    "2",
  ]);
  const c = await connect(vmm.sock);
  // On a one-CPU host (CI's nested KVM host) both vCPUs share CPU 0 and the
  // SCHED_FIFO vcpu-0 leaves every other thread, the VMM's main loop
  // included, the 5% that RT throttling keeps back while the guest boots:
  // answers come, but slowly.
  if (last === 0) c.timeoutMs = 60_000;
  try {
    assert.equal((await c.call("query-status")).return!.constructor, Object);
    assert.equal(((await c.call("query-status")).return as { status: string }).status, "prelaunch");
    assert.equal(lastTick(vmm.vmm.stdout), 0, "-S: the guest has not run");
    // cont from prelaunch starts the vCPUs.
    assert.equal((await c.call("cont")).event, "RESUME");
    assert.deepEqual(await c.next(), { return: {} });
    type Cpu = { "cpu-index": number; "thread-id": number };
    let list: Cpu[] = [];
    for (let i = 0; i < 600; i++) {
      list = (await c.call("query-cpus-fast")).return as Cpu[];
      if (list.length === 2 && list.every((x) => x["thread-id"] > 0)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(list.length, 2);
    const pid = vmm.vmm.child.pid;
    const v0 = threadFacts(pid, list[0]["thread-id"]);
    const v1 = threadFacts(pid, list[1]["thread-id"]);
    assert.deepEqual([v0.name, v0.cpus, v0.policy, v0.rtprio], ["vcpu-0", "0", 1, 5]);
    assert.deepEqual([v1.name, v1.cpus, v1.policy, v1.nice], ["vcpu-1", `${last}`, 0, 3]);
    await until("the guest's counter", () => lastTick(vmm.vmm.stdout) >= 3);
    assert.match(vmm.vmm.stdout, new RegExp(`${M} inputs=.*event`), "evdev + the power button");
    // stop: the counter stops moving.
    await c.send("stop");
    assert.equal((await c.next()).event, "STOP");
    assert.deepEqual(await c.next(), { return: {} });
    const frozen = lastTick(vmm.vmm.stdout);
    await new Promise((r) => setTimeout(r, 4000));
    assert.ok(
      lastTick(vmm.vmm.stdout) <= frozen + 1,
      `ticks while stopped: ${frozen} -> ${lastTick(vmm.vmm.stdout)}`,
    );
    assert.equal(((await c.call("query-status")).return as { status: string }).status, "paused");
    await c.send("cont");
    assert.equal((await c.next()).event, "RESUME");
    assert.deepEqual(await c.next(), { return: {} });
    await until("the counter to move again", () => lastTick(vmm.vmm.stdout) >= frozen + 3, 60_000);
    const stats = (await c.call("x-query-denovmm-stats")).return as {
      vcpus: { exits: number }[];
      threads: { name: string }[];
    };
    assert.ok(stats.vcpus.every((v) => v.exits > 0), JSON.stringify(stats.vcpus));
    assert.ok(stats.threads.some((t) => t.name === "vcpu-1"));
    assert.match(vmm.vmm.stderr, /denovmm: stats: vcpu0 \S+ exits\/s.* guest \d+% vmm \d+%/);
    // The power button: acpid runs the script, the guest powers off.
    await c.send("system_powerdown");
    assert.equal((await c.next()).event, "POWERDOWN");
    assert.deepEqual(await c.next(), { return: {} });
    const shutdown = await c.next(120_000);
    if (shutdown.event === "SHUTDOWN") await vmm.vmm.done.catch(() => {});
    assert.deepEqual(
      [shutdown.event, shutdown.data],
      ["SHUTDOWN", { guest: true, reason: "guest-shutdown" }],
      `how the VMM ended:\n--- stderr ---\n${vmm.vmm.stderr.slice(-3000)}\n--- stdout ---\n${
        vmm.vmm.stdout.slice(-2000)
      }`,
    );
    const { code } = await vmm.vmm.done;
    assert.equal(code, 0);
    assert.ok(vmm.vmm.stdout.includes(`${M} power-button`), vmm.vmm.stdout.slice(-2000));
  } finally {
    c.close();
    try {
      vmm.vmm.child.kill("SIGKILL");
    } catch { /* exited */ }
    await vmm.vmm.done;
    Deno.removeSync(vmm.dir, { recursive: true });
  }
});

Deno.test("QMP quit right after the guest synced a file loses nothing", async () => {
  const f = await linuxFixture();
  const initrd = await diskInitramfs();
  const dir = Deno.makeTempDirSync({ prefix: "denovmm-qmp-disk-" });
  const img = `${dir}/disk.img`;
  Deno.writeFileSync(img, new Uint8Array(64 << 20));
  const boot = async (mode: string, quitOn?: RegExp) => {
    const vmm = spawnVmm([
      "-kernel",
      f.kernel,
      "-initrd",
      initrd,
      "-append",
      `console=ttyS0 panic=-1 quiet denovmm.disk=${mode}`,
      "-m",
      "256M",
      "-drive",
      `file=${img},if=virtio,format=raw`,
      "-no-reboot",
    ]);
    const c = await connect(vmm.sock);
    try {
      if (quitOn) {
        await until("the synced marker", () => quitOn.test(vmm.vmm.stdout));
        assert.equal((await c.call("quit")).event, "SHUTDOWN");
        assert.deepEqual(await c.next(), { return: {} });
      }
      const { code } = await vmm.vmm.done;
      return { code, out: vmm.vmm.stdout };
    } finally {
      c.close();
      Deno.removeSync(vmm.dir, { recursive: true });
    }
  };
  try {
    const mkfs = await boot("mkfs");
    assert.equal(mkfs.code, 0, mkfs.out.slice(-2000));
    const killed = await boot("kill", new RegExp(`${DISK_MARKER} synced-written=`));
    assert.equal(killed.code, 0, "QMP quit exits 0 as QEMU does");
    const written = killed.out.match(new RegExp(`${DISK_MARKER} synced-written=(\\w+)`))![1];
    const check = await boot("check");
    assert.equal(check.code, 0, check.out.slice(-2000));
    const seen = check.out.match(new RegExp(`${DISK_MARKER} synced=(\\w+)`));
    assert.equal(seen?.[1], written, check.out.slice(-2000));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
