import assert from "node:assert/strict";
import { buildRoleTable, parseCpuList, PlacementError } from "./policy.ts";
import { policyForThread } from "../sys/thread_role.ts";
import { SCHED_FIFO, SCHED_OTHER, SCHED_RR, threadScheduler } from "../sys/sched.ts";

const PROBE = new URL("./testdata/probe.ts", import.meta.url).pathname;

Deno.test("placement flags parse into a role table; mistakes are one line", () => {
  assert.deepEqual(parseCpuList("0-2,5,1"), [0, 1, 2, 5]);
  const t = buildRoleTable({
    vcpuAffinity: "0=2,3,1=4",
    affinity: "main=0,aio=0-1,iothread-0=1",
    sched: "vcpu=fifo:10,vcpu-1=rr:3,aio=nice:5,main=other",
  });
  assert.deepEqual(t["vcpu-0"], { cpus: [2, 3] });
  assert.deepEqual(policyForThread(t, "vcpu-0"), {
    policy: SCHED_FIFO,
    priority: 10,
    cpus: [2, 3],
  });
  assert.deepEqual(policyForThread(t, "vcpu-1"), { policy: SCHED_RR, priority: 3, cpus: [4] });
  assert.deepEqual(policyForThread(t, "aio-17"), {
    cpus: [0, 1],
    policy: SCHED_OTHER,
    priority: 0,
    nice: 5,
  });
  assert.deepEqual(policyForThread(t, "vnc-worker"), {});
  const bad: [Record<string, string>, RegExp][] = [
    [{ vcpuAffinity: "x=1" }, /'x' is not a vCPU index/],
    [{ vcpuAffinity: "0=1,0=2" }, /'0' given twice/],
    [{ affinity: "gpu=1" }, /Invalid --affinity role 'gpu'/],
    [{ affinity: "aio=3-1" }, /empty range/],
    [{ affinity: "aio=a" }, /not a CPU list/],
    [{ sched: "vcpu=fifo:0" }, /1\.\.99/],
    [{ sched: "vcpu=nice:-21" }, /-20\.\.19/],
    [{ sched: "vcpu=idle" }, /not fifo:N, rr:N, other or nice:N/],
    [{ sched: "vcpu" }, /expected ROLE=VALUE/],
    [{ vcpuAffinity: "0=1", affinity: "vcpu-0=2" }, /both --vcpu-affinity and --affinity/],
  ];
  for (const [flags, re] of bad) {
    assert.throws(() => buildRoleTable(flags), (e: unknown) => {
      assert.ok(e instanceof PlacementError, String(e));
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
});

interface ProbeResult {
  code: number;
  stderr: string;
  out?: { main: number; pid: number; threads: Record<string, number> };
  /** Reads /proc while the probe still runs. */
  status?: Record<
    string,
    { cpus: string; policy: number; rtprio: number; nice: number; cgroup: string }
  >;
}

function cpusAllowed(pid: number, tid: number): string {
  const s = Deno.readTextFileSync(`/proc/${pid}/task/${tid}/status`);
  return /Cpus_allowed_list:\s*(\S+)/.exec(s)![1];
}

function schedOf(pid: number, tid: number) {
  const stat = Deno.readTextFileSync(`/proc/${pid}/task/${tid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 19 (nice), 40 (rt_priority), 41 (policy), counted from 1 with pid at 1.
  return { nice: Number(f[16]), rtprio: Number(f[37]), policy: Number(f[38]) };
}

async function probe(
  flags: Record<string, string>,
  names: string[],
  wrap: string[] = [],
): Promise<ProbeResult> {
  const cmd = [
    ...wrap,
    Deno.execPath(),
    "run",
    "--allow-ffi",
    PROBE,
    JSON.stringify(flags),
    ...names,
  ];
  const p = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = p.stdout.getReader();
  let text = "";
  let status: ProbeResult["status"];
  let out: ProbeResult["out"];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
    if (text.includes("\n")) {
      out = JSON.parse(text.slice(0, text.indexOf("\n")));
      status = {};
      for (const [name, tid] of Object.entries({ main: out!.main, ...out!.threads })) {
        const cg = Deno.readTextFileSync(`/proc/${out!.pid}/task/${tid}/cgroup`);
        // sched_getscheduler/sched_getparam on the thread must agree with /proc.
        const sched = threadScheduler(tid);
        const proc = schedOf(out!.pid, tid);
        assert.deepEqual([sched.policy, sched.priority], [proc.policy, proc.rtprio]);
        status[name] = {
          cpus: cpusAllowed(out!.pid, tid),
          ...schedOf(out!.pid, tid),
          cgroup: /^0::(.*)$/m.exec(cg)?.[1] ?? "",
        };
      }
      break;
    }
  }
  await p.stdin.close();
  reader.releaseLock();
  const r = await p.output();
  return { code: r.code, stderr: new TextDecoder().decode(r.stderr), out, status };
}

const CPUS = navigator.hardwareConcurrency;

Deno.test("each thread takes its role's CPUs and policy when it names itself", async () => {
  const last = CPUS - 1;
  const r = await probe({
    vcpuAffinity: `0=${last},1=0`,
    affinity: `main=0,aio=0-${last}`,
    sched: "vcpu=fifo:10,vcpu-1=rr:3,aio=nice:5,iothread=nice:2",
  }, ["vcpu-0", "vcpu-1", "aio-0", "aio-7", "iothread-0", "vnc-worker"]);
  assert.equal(r.code, 0, r.stderr);
  const s = r.status!;
  assert.equal(s.main.cpus, "0");
  assert.equal(s["vcpu-0"].cpus, `${last}`);
  assert.deepEqual([s["vcpu-0"].policy, s["vcpu-0"].rtprio], [SCHED_FIFO, 10]);
  assert.equal(s["vcpu-1"].cpus, "0");
  assert.deepEqual([s["vcpu-1"].policy, s["vcpu-1"].rtprio], [SCHED_RR, 3]);
  for (const aio of ["aio-0", "aio-7"]) {
    assert.equal(s[aio].cpus, last === 0 ? "0" : `0-${last}`);
    assert.deepEqual([s[aio].policy, s[aio].nice], [SCHED_OTHER, 5]);
  }
  assert.equal(s["iothread-0"].nice, 2);
  // A role nobody named keeps what it inherited (the main thread's CPUs at spawn).
  assert.equal(s["vnc-worker"].policy, SCHED_OTHER);
  assert.equal(s["vnc-worker"].nice, 0);
});

Deno.test("unknown CPUs, roles and a missing privilege end in one line, nothing applied", async () => {
  const cases: [Record<string, string>, RegExp, string[]][] = [
    [{ affinity: `aio=${CPUS + 3}` }, new RegExp(`CPU ${CPUS + 3} is not available`), []],
    [{ vcpuAffinity: "5=0" }, /vcpu-5 named, but the machine has 2 vCPU/, []],
    [{ affinity: "iothread-4=0" }, /no disk uses iothread=4/, []],
    [{ cgroup: "/nonexistent/vmm" }, /not a cgroup v2 directory/, []],
    [
      { sched: "vcpu=fifo:10", affinity: "main=0" },
      /vcpu: real-time priority 10 .*not permitted \(EPERM\)/,
      ["setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice"],
    ],
  ];
  for (const [flags, re, wrap] of cases) {
    const r = await probe(flags, ["vcpu-0"], wrap);
    assert.equal(r.code, 1, `${JSON.stringify(flags)}: ${r.stderr}`);
    assert.equal(r.out, undefined, "no thread was started");
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], re);
  }
});

function cgroup2Mount(): string | undefined {
  for (const l of Deno.readTextFileSync("/proc/self/mounts").split("\n")) {
    const [, dir, type] = l.split(" ");
    if (type === "cgroup2") return dir;
  }
  return undefined;
}

Deno.test("--cgroup places the process, and role sub-cgroups take their threads", async () => {
  const mount = cgroup2Mount();
  const dir = mount && `${mount}/denovmm-test-${Deno.pid}`;
  try {
    if (!dir) throw new Error("no cgroup2 mount");
    Deno.mkdirSync(dir);
    Deno.mkdirSync(`${dir}/vcpu`);
    Deno.writeTextFileSync(`${dir}/vcpu/cgroup.type`, "threaded");
  } catch (e) {
    console.log(
      `SKIP --cgroup placement: cgroup v2 is not writable here (${(e as Error).message})`,
    );
    if (dir) await Deno.remove(dir, { recursive: false }).catch(() => {});
    return;
  }
  try {
    const r = await probe({ cgroup: dir }, ["vcpu-0", "aio-0"]);
    assert.equal(r.code, 0, r.stderr);
    const rel = dir.slice(mount!.length);
    assert.equal(r.status!.main.cgroup, rel);
    assert.equal(r.status!["vcpu-0"].cgroup, `${rel}/vcpu`);
    assert.equal(r.status!["aio-0"].cgroup, rel);
  } finally {
    await new Promise((res) => setTimeout(res, 200));
    Deno.removeSync(`${dir}/vcpu`);
    Deno.removeSync(dir);
  }
});
