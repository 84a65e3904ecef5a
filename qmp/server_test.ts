import assert from "node:assert/strict";
import { MainLoop } from "../mainloop/main_loop.ts";
import { QmpServer } from "./server.ts";
import { FakeTarget, TestClient } from "./_test_client.ts";
import { ErrnoError } from "../sys/errno.ts";

async function withServer(
  fn: (ctx: { path: string; target: FakeTarget; server: QmpServer }) => Promise<void>,
  options: { maxMessageBytes?: number; maxQueuedBytes?: number } = {},
): Promise<void> {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/qmp.sock`;
  const loop = new MainLoop();
  const running = loop.run();
  const target = new FakeTarget();
  const server = QmpServer.listen(loop, path, target, options);
  try {
    await fn({ path, target, server });
  } finally {
    server.close();
    loop.stop();
    await running;
    loop.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

async function negotiated(path: string): Promise<TestClient> {
  const c = new TestClient(path);
  const greeting = await c.next();
  assert.ok("QMP" in greeting);
  assert.deepEqual(await c.call("qmp_capabilities"), { return: {} });
  return c;
}

Deno.test("QMP: greeting, negotiation, commands with ids, events in QEMU's order", async () => {
  await withServer(async ({ path, target }) => {
    const c = new TestClient(path);
    const g = await c.next() as { QMP: { version: unknown; capabilities: unknown[] } };
    assert.deepEqual(Object.keys(g.QMP).sort(), ["capabilities", "version"]);
    const early = await c.call("query-status");
    assert.equal((early.error as { class: string }).class, "CommandNotFound");
    assert.deepEqual(await c.call("qmp_capabilities", undefined, 1), { return: {}, id: 1 });
    assert.deepEqual(await c.call("query-status", undefined, "x"), {
      return: { status: "running", singlestep: false, running: true },
      id: "x",
    });
    // stop: the STOP event comes before the reply, as QEMU sends it.
    await c.send("stop", undefined, 2);
    const ev = await c.next();
    assert.equal(ev.event, "STOP");
    const ts = ev.timestamp as { seconds: number; microseconds: number };
    assert.ok(Math.abs(ts.seconds - Date.now() / 1000) < 5);
    assert.ok(ts.microseconds >= 0 && ts.microseconds < 1e6);
    assert.deepEqual(await c.next(), { return: {}, id: 2 });
    assert.equal((await c.call("query-status")).return!.constructor, Object);
    assert.equal(target.state, "paused");
    assert.equal((await c.call("cont")).event, "RESUME");
    assert.deepEqual(await c.next(), { return: {} });
    const reset = await c.call("system_reset");
    assert.deepEqual(reset.data, { guest: false, reason: "host-qmp-system-reset" });
    assert.deepEqual(await c.next(), { return: {} });
    assert.equal((await c.call("system_powerdown")).event, "POWERDOWN");
    assert.deepEqual(await c.next(), { return: {} });
    const cpus = (await c.call("query-cpus-fast")).return as Record<string, unknown>[];
    assert.deepEqual(cpus.map((x) => [x["cpu-index"], x["thread-id"]]), [[0, 1001], [1, 1002]]);
    const io = (await c.call("query-iothreads")).return as Record<string, unknown>[];
    assert.deepEqual(io.map((x) => [x.id, x["thread-id"]]), [["iothread-0", 2001]]);
    const blk = (await c.call("query-block")).return as { inserted: { file: string } }[];
    assert.equal(blk[0].inserted.file, "/tmp/d.img");
    assert.deepEqual((await c.call("x-query-denovmm-stats")).return, { vcpus: [{ exits: 5 }] });
    // query-version repeats the greeting's version; the accelerator is always KVM.
    assert.deepEqual((await c.call("query-version")).return, g.QMP.version);
    assert.deepEqual((await c.call("query-kvm")).return, { enabled: true, present: true });
    const names = ((await c.call("query-commands")).return as { name: string }[]).map((x) =>
      x.name
    );
    assert.ok(names.includes("query-version") && names.includes("query-kvm"), names.join(" "));
    assert.deepEqual(target.calls, ["stop", "cont", "reset", "powerdown"]);
    const shut = await c.call("quit", undefined, 9);
    assert.deepEqual(shut.data, { guest: false, reason: "host-qmp-quit" });
    assert.deepEqual(await c.next(), { return: {}, id: 9 });
    assert.deepEqual(target.calls.at(-1), "quit");
    c.close();
  });
});

Deno.test("QMP: screendump writes through the machine, PPM unless png is asked for; QEMU's errors otherwise", async () => {
  await withServer(async ({ path, target }) => {
    const c = await negotiated(path);
    const err = async (args: Record<string, unknown>) => (await c.call("screendump", args)).error;
    // No display: QEMU's words for a machine without a console.
    assert.deepEqual(await err({ filename: "/tmp/x.ppm" }), {
      class: "GenericError",
      desc: "There is no console to take a screendump from",
    });
    const written: [string, string][] = [];
    target.screendump = (f, format) => {
      if (f.startsWith("/nonexistent/")) throw new ErrnoError(`open ${f}`, 2);
      written.push([f, format]);
    };
    assert.deepEqual((await c.call("screendump", { filename: "/tmp/a.ppm" })).return, {});
    assert.deepEqual(
      (await c.call("screendump", { filename: "/tmp/a.png", format: "png" })).return,
      {},
    );
    assert.deepEqual(written, [["/tmp/a.ppm", "ppm"], ["/tmp/a.png", "png"]]);
    assert.deepEqual(await err({ filename: "/nonexistent/a.ppm" }), {
      class: "GenericError",
      desc: "failed to open file '/nonexistent/a.ppm': No such file or directory",
    });
    assert.equal(
      (await err({ filename: "a", device: "vga0" }) as { class: string }).class,
      "DeviceNotFound",
    );
    assert.match(
      (await err({ filename: "a", format: "gif" }) as { desc: string }).desc,
      /'format'/,
    );
    assert.match((await err({}) as { desc: string }).desc, /'filename' is missing/);
    c.close();
  });
});

Deno.test("QMP: send-key hands checked key names and numbers to the machine and answers at once", async () => {
  await withServer(async ({ path, target }) => {
    const c = await negotiated(path);
    const sent: [(string | number)[], number][] = [];
    target.sendKey = (keys, hold) => sent.push([keys, hold]);
    const keys = (...k: [string, string | number][]) => k.map(([type, data]) => ({ type, data }));
    assert.deepEqual(
      await c.call("send-key", {
        keys: keys(["qcode", "ctrl"], ["qcode", "alt"], ["qcode", "delete"]),
      }),
      { return: {} },
    );
    assert.deepEqual(
      await c.call("send-key", { keys: keys(["number", 0x9c]), "hold-time": 20 }),
      { return: {} },
    );
    assert.deepEqual(sent, [[["ctrl", "alt", "delete"], 100], [[0x9c], 20]]);
    const err = async (args: Record<string, unknown>) =>
      ((await c.call("send-key", args)).error as { desc: string }).desc;
    assert.equal(
      await err({ keys: keys(["number", 300]) }),
      "Parameter 'data' does not accept value '300'",
    );
    assert.equal(
      await err({ keys: keys(["qcode", "A"]) }),
      "Parameter 'data' does not accept value 'A'",
    );
    assert.equal(
      await err({ keys: [{ type: "qcode", data: 5 }] }),
      "Invalid parameter type for 'data', expected: string",
    );
    assert.equal(
      await err({ keys: [5] }),
      "Invalid parameter type for 'keys[0]', expected: object",
    );
    assert.equal(await err({ keys: [{ type: "qcode" }] }), "Parameter 'keys[0].data' is missing");
    assert.equal(sent.length, 2, "nothing sent for a refused command");
    c.close();
  });
});

Deno.test("QMP: garbage, wrong shapes, unknown commands and bad arguments get errors", async () => {
  await withServer(async ({ path }) => {
    const c = await negotiated(path);
    const err = async (raw: string) => {
      await c.sendRaw(raw);
      const m = await c.next() as { error: { class: string; desc: string }; id?: unknown };
      assert.ok(m.error, `an error for ${raw}: ${JSON.stringify(m)}`);
      return m;
    };
    assert.match((await err("garbage\n")).error.desc, /^JSON parse error/);
    assert.equal((await err("[1]\n")).error.desc, "QMP input must be a JSON object");
    assert.equal((await err('{"foo":1}\n')).error.desc, "QMP input member 'foo' is unexpected");
    assert.equal((await err("{}\n")).error.desc, "QMP input lacks member 'execute'");
    assert.equal(
      (await err('{"execute":5}\n')).error.desc,
      "QMP input member 'execute' must be a string",
    );
    const nf = await err('{"execute":"nope","id":7}\n');
    assert.deepEqual(nf, {
      error: { class: "CommandNotFound", desc: "The command nope has not been found" },
      id: 7,
    });
    assert.equal(
      (await err('{"execute":"query-stats"}\n')).error.desc,
      "Parameter 'target' is missing",
    );
    assert.equal(
      (await err('{"execute":"query-stats","arguments":{"target":"foo"}}\n')).error.desc,
      "Parameter 'target' does not accept value 'foo'",
    );
    assert.equal(
      (await err('{"execute":"stop","arguments":{"x":1}}\n')).error.desc,
      "Parameter 'x' is unexpected",
    );
    assert.equal(
      (await err('{"execute":"stop","arguments":[]}\n')).error.desc,
      "QMP input member 'arguments' must be an object",
    );
    assert.equal(
      (await err('{"execute":"qmp_capabilities"}\n')).error.class,
      "CommandNotFound",
    );
    // Two commands in one write, no newline between them: two replies.
    await c.sendRaw('{"execute":"query-status","id":1}{"execute":"query-status","id":2}');
    assert.equal((await c.next()).id, 1);
    assert.equal((await c.next()).id, 2);
    c.close();
  });
});

Deno.test("QMP: a huge message is refused and the client dropped; others carry on", async () => {
  await withServer(async ({ path, server, target }) => {
    const other = await negotiated(path);
    const c = await negotiated(path);
    await c.sendRaw('{"execute":"query-status","arguments":{"x":"' + "a".repeat(300_000))
      .catch((e) => assert.match(String(e), /EPIPE|ECONNRESET/, "dropped while sending"));
    const m = await c.next() as { error: { desc: string } };
    assert.match(m.error.desc, /over 65536 bytes/);
    assert.equal(await c.waitEof(), true);
    c.close();
    assert.equal((await other.call("query-status")).return !== undefined, true);
    assert.equal(server.clients, 1);
    assert.deepEqual(target.calls, []);
    other.close();
  }, { maxMessageBytes: 65536 });
});

Deno.test("QMP: vanishing clients and a client that never reads are dropped", async () => {
  await withServer(async ({ path, server }) => {
    // Half a command, then gone.
    const a = new TestClient(path);
    await a.next();
    await a.sendRaw('{"execute":"qmp_capa');
    a.close();
    // Gone before reading the greeting.
    new TestClient(path).close();
    // Sends a flood of commands and never reads the replies.
    const flood = await negotiated(path);
    const cmd = '{"execute":"query-block"}'.repeat(2000);
    for (let i = 0; i < 20 && !flood.eof; i++) {
      try {
        await flood.sendRaw(cmd);
      } catch {
        break; // dropped while we were still writing
      }
    }
    const until = Date.now() + 5000;
    while (server.clients > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.clients, 0);
    flood.close();
    const b = await negotiated(path);
    assert.ok((await b.call("query-status")).return);
    b.close();
  }, { maxQueuedBytes: 256 * 1024 });
});

Deno.test("QMP: events reach only negotiated clients; close removes the socket", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/qmp.sock`;
  const loop = new MainLoop();
  const running = loop.run();
  const server = QmpServer.listen(loop, path, new FakeTarget());
  const fresh = new TestClient(path);
  await fresh.next();
  const c = await negotiated(path);
  server.emit("SHUTDOWN", { guest: true, reason: "guest-shutdown" });
  const ev = await c.next();
  assert.deepEqual(ev.data, { guest: true, reason: "guest-shutdown" });
  assert.deepEqual(await fresh.call("qmp_capabilities"), { return: {} }, "no event queued first");
  server.close();
  assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
  assert.equal(await c.waitEof(), true);
  c.close();
  fresh.close();
  loop.stop();
  await running;
  loop.close();
  Deno.removeSync(dir, { recursive: true });
});
