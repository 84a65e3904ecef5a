import assert from "node:assert/strict";
import { MainLoop } from "../mainloop/main_loop.ts";
import { TestClient } from "../qmp/_test_client.ts";
import { ControlPlaneError, type OperatedVm, startControlPlane } from "./control_plane.ts";
import { Pidfile, PidfileError } from "./pidfile.ts";
import { VCPU_EXIT_KINDS, VCPU_EXITS, VmControl } from "../vcpu/vm_control.ts";
import { gettid } from "../sys/thread.ts";

/** A VM double with the builder's Vm shape and lifecycle. */
class FakeVm implements OperatedVm {
  readonly loop: MainLoop;
  status = "prelaunch";
  readonly calls: string[] = [];
  readonly vcpuControl = new VmControl(new SharedArrayBuffer(VmControl.bytes(1)));
  readonly #listeners = new Map<string, Set<(t: string) => void>>();
  constructor(loop: MainLoop) {
    this.loop = loop;
  }
  get vcpuThreadIds(): number[] {
    return [gettid()];
  }
  get iothreads() {
    return [];
  }
  get disks() {
    return [];
  }
  on(type: string, l: (t: string) => void): () => void {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type)!.add(l);
    return () => this.#listeners.get(type)!.delete(l);
  }
  fire(type: string): void {
    for (const l of this.#listeners.get(type) ?? []) l(type);
  }
  start(): Promise<void> {
    this.calls.push("start");
    this.status = "running";
    return Promise.resolve();
  }
  async pause(): Promise<void> {
    this.calls.push("pause");
    await new Promise((r) => setTimeout(r, 5));
    this.status = "paused";
  }
  resume(): void {
    this.calls.push("resume");
    this.status = "running";
  }
  stop(code?: number): void {
    this.calls.push(`stop:${code}`);
    this.status = "shutdown";
  }
  powerdown(): boolean {
    this.calls.push("powerdown");
    return true;
  }
  reset(): void {
    this.calls.push("reset");
    queueMicrotask(() => this.fire("reset"));
  }
}

async function withVm(fn: (vm: FakeVm, dir: string) => void | Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync();
  const loop = new MainLoop();
  const running = loop.run();
  try {
    await fn(new FakeVm(loop), dir);
  } finally {
    loop.stop();
    await running;
    loop.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("control plane: -S then cont starts the VM; guest events become QMP events", async () => {
  await withVm(async (vm, dir) => {
    const cp = startControlPlane(vm, { qmp: `${dir}/q.sock`, pidfile: `${dir}/vm.pid` });
    assert.equal(Deno.readTextFileSync(`${dir}/vm.pid`), `${Deno.pid}\n`);
    const c = new TestClient(`${dir}/q.sock`);
    await c.next();
    await c.call("qmp_capabilities");
    assert.equal(((await c.call("query-status")).return as { status: string }).status, "prelaunch");
    assert.equal((await c.call("cont")).event, "RESUME");
    assert.deepEqual(await c.next(), { return: {} });
    assert.deepEqual(vm.calls, ["start"]);
    // A host reset sends one RESET (QMP's), not a second one when the VM rebuilds.
    assert.equal((await c.call("system_reset")).event, "RESET");
    assert.deepEqual(await c.next(), { return: {} });
    vm.fire("reboot");
    const ev = await c.next();
    assert.deepEqual([ev.event, ev.data], ["SHUTDOWN", { guest: true, reason: "guest-reset" }]);
    vm.fire("reset"); // a guest-initiated reset
    assert.deepEqual((await c.next()).data, { guest: true, reason: "guest-reset" });
    // Statistics over QMP, from the VM's own counters.
    vm.vcpuControl.words[vm.vcpuControl.vcpuWord(0, VCPU_EXITS)] = 42;
    vm.vcpuControl.words[vm.vcpuControl.vcpuWord(0, VCPU_EXIT_KINDS) + 1] = 42;
    const st = (await c.call("x-query-denovmm-stats")).return as {
      vcpus: { exits: number; "thread-id": number }[];
      "main-loop": { iterations: number };
    };
    assert.equal(st.vcpus[0].exits, 42);
    assert.ok(st["main-loop"].iterations > 0);
    const qs = (await c.call("query-stats", { target: "vcpu" })).return as unknown[];
    assert.equal(qs.length, 1);
    assert.equal((await c.call("quit")).event, "SHUTDOWN");
    assert.deepEqual(await c.next(), { return: {} });
    assert.equal(vm.calls.at(-1), "stop:0");
    vm.fire("stopped"); // the end that quit caused: no second SHUTDOWN
    cp.close();
    assert.equal(await c.waitEof(), true);
    c.close();
    assert.throws(() => Deno.lstatSync(`${dir}/q.sock`), Deno.errors.NotFound);
    assert.throws(() => Deno.lstatSync(`${dir}/vm.pid`), Deno.errors.NotFound);
  });
});

Deno.test("control plane: a bad QMP path is one line and leaves no pid file", async () => {
  await withVm((vm, dir) => {
    Deno.writeTextFileSync(`${dir}/notes`, "x");
    assert.throws(
      () => startControlPlane(vm, { qmp: `${dir}/notes`, pidfile: `${dir}/vm.pid` }),
      (e: unknown) => e instanceof ControlPlaneError && /not a socket/.test(e.message),
    );
    assert.throws(() => Deno.lstatSync(`${dir}/vm.pid`), Deno.errors.NotFound);
    assert.equal(Deno.readTextFileSync(`${dir}/notes`), "x");
  });
});

Deno.test("pid file: locked while held, refused to a second holder", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const p = Pidfile.create(`${dir}/vm.pid`);
    // flock locks belong to the open file: a second open in this process conflicts too.
    assert.throws(() => Pidfile.create(`${dir}/vm.pid`), PidfileError);
    p.remove();
    Pidfile.create(`${dir}/vm.pid`).remove();
    assert.throws(() => Pidfile.create(`${dir}/no/such/dir/vm.pid`), /cannot create/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
