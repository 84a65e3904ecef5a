/**
 * The same QMP script through `socat` to the real QEMU (Debian's
 * qemu-system-x86, `-S`, no KVM needed) and to denovmm's server (a fake
 * machine behind it): the replies must have QEMU's shapes, error classes and
 * descriptions, and the events must come in the same order with the same data.
 */
import assert from "node:assert/strict";
import { ensureAptPackages } from "../tests/fixtures/debian.ts";
import { MainLoop } from "../mainloop/main_loop.ts";
import { QmpServer } from "./server.ts";
import { FakeTarget } from "./_test_client.ts";

const SCRIPT = [
  '{"execute":"query-status"}',
  '{"execute":"qmp_capabilities"}',
  '{"execute":"qmp_capabilities"}',
  "garbage",
  "[1]",
  '{"foo":1}',
  "{}",
  '{"execute":5}',
  '{"execute":"nope","id":7}',
  '{"execute":"query-status","id":"a"}',
  '{"execute":"query-status","id":1}{"execute":"query-status","id":2}',
  '{"execute":"query-cpus-fast"}',
  '{"execute":"query-name"}',
  '{"execute":"query-version"}',
  '{"execute":"query-version","arguments":{"x":1}}',
  '{"execute":"query-kvm"}',
  '{"execute":"screendump","arguments":{"filename":"/nonexistent/x.ppm"}}',
  '{"execute":"screendump","arguments":{"filename":"x.ppm","format":"gif"}}',
  '{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"foo"}]}}',
  '{"execute":"send-key","arguments":{"keys":"a"}}',
  '{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"a"}]}}',
  '{"execute":"send-key","arguments":{"keys":[]}}',
  '{"execute":"send-key","arguments":{"keys":[{"type":"number","data":29},{"type":"qcode","data":"ctrl"}],"hold-time":50}}',
  '{"execute":"send-key","arguments":{"keys":[{"type":"foo","data":1}]}}',
  '{"execute":"send-key","arguments":{"keys":[{"data":1}]}}',
  '{"execute":"query-iothreads"}',
  '{"execute":"query-block"}',
  '{"execute":"query-stats"}',
  '{"execute":"query-stats","arguments":{"target":5}}',
  '{"execute":"query-stats","arguments":{"target":"foo"}}',
  '{"execute":"stop","arguments":{"x":1}}',
  '{"execute":"stop","arguments":[]}',
  '{"execute":"cont"}',
  '{"execute":"stop"}',
  '{"execute":"query-status"}',
  '{"execute":"system_reset"}',
  '{"execute":"system_powerdown"}',
  '{"execute":"quit"}',
].join("\n") + "\n";

/** Keys QEMU sends that denovmm leaves out, by where they are. */
const QEMU_ONLY = new Set<string>([]);

async function socat(path: string): Promise<Record<string, unknown>[]> {
  const p = new Deno.Command("socat", {
    args: ["-t", "3", "-", `UNIX-CONNECT:${path}`],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(SCRIPT));
  await w.close();
  const out = await p.output();
  const text = new TextDecoder().decode(out.stdout);
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

function compareShape(ours: unknown, qemu: unknown, where: string): void {
  if (Array.isArray(qemu)) {
    assert.ok(Array.isArray(ours), `${where}: an array`);
    if (qemu.length > 0) {
      for (const [i, o] of ours.entries()) compareShape(o, qemu[0], `${where}[${i}]`);
    }
    return;
  }
  if (qemu !== null && typeof qemu === "object") {
    assert.ok(
      ours !== null && typeof ours === "object" && !Array.isArray(ours),
      `${where}: object`,
    );
    const q = qemu as Record<string, unknown>;
    const o = ours as Record<string, unknown>;
    const qKeys = Object.keys(q).filter((k) => !QEMU_ONLY.has(`${where}.${k}`)).sort();
    assert.deepEqual(Object.keys(o).sort(), qKeys, `${where}: keys`);
    for (const k of qKeys) compareShape(o[k], q[k], `${where}.${k}`);
    return;
  }
  assert.equal(typeof ours, typeof qemu, `${where}: type`);
}

Deno.test("QMP: denovmm answers the script as QEMU 7.2 does (shapes, errors, events)", async () => {
  await ensureAptPackages(["qemu-system-x86", "socat"]);
  const dir = Deno.makeTempDirSync();
  const img = `${dir}/d.img`;
  Deno.writeFileSync(img, new Uint8Array(1 << 20));
  const qemuSock = `${dir}/qemu.sock`;
  const oursSock = `${dir}/ours.sock`;
  const qemu = new Deno.Command("qemu-system-x86_64", {
    args: [
      "-S",
      "-display",
      "none",
      "-nodefaults",
      "-m",
      "64",
      "-smp",
      "2",
      "-name",
      "web",
      "-object",
      "iothread,id=iothread0",
      "-drive",
      `file=${img},if=virtio,format=raw`,
      "-qmp",
      `unix:${qemuSock},server,wait=off`,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const loop = new MainLoop();
  const running = loop.run();
  const target = new FakeTarget();
  target.state = "prelaunch";
  target.name = () => "web";
  target.sendKey = () => {};
  target.blocks = () => [{
    device: "virtio0",
    file: img,
    readOnly: false,
    size: 1 << 20,
    direct: false,
    actualSize: 0,
  }];
  const server = QmpServer.listen(loop, oursSock, target);
  try {
    for (let i = 0; i < 200; i++) {
      try {
        if (Deno.lstatSync(qemuSock).isSocket) break;
      } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    const theirs = await socat(qemuSock);
    const ours = await socat(oursSock);
    assert.equal(ours.length, theirs.length, `${JSON.stringify(ours)}\n${JSON.stringify(theirs)}`);
    assert.ok(theirs.length > 25, "QEMU answered the whole script");
    for (let i = 0; i < theirs.length; i++) {
      const q = theirs[i];
      const o = ours[i];
      const where = `message ${i} (QEMU: ${JSON.stringify(q)}; ours: ${JSON.stringify(o)})`;
      assert.deepEqual(Object.keys(o).sort(), Object.keys(q).sort(), where);
      if ("QMP" in q) compareShape(o.QMP, q.QMP, "greeting");
      if ("id" in q) assert.deepEqual(o.id, q.id, where);
      if ("event" in q) {
        assert.equal(o.event, q.event, where);
        assert.deepEqual(o.data, q.data, where);
        compareShape(o.timestamp, q.timestamp, "timestamp");
      }
      if ("error" in q) {
        const qe = q.error as { class: string; desc: string };
        const oe = o.error as { class: string; desc: string };
        assert.equal(oe.class, qe.class, where);
        if (qe.desc.startsWith("JSON parse error")) assert.match(oe.desc, /^JSON parse error/);
        else assert.equal(oe.desc, qe.desc, where);
      }
      if ("return" in q) compareShape(o.return, q.return, `return of ${where}`);
    }
    assert.deepEqual(target.calls, ["cont", "stop", "reset", "powerdown", "quit"]);
  } finally {
    server.close();
    loop.stop();
    await running;
    loop.close();
    try {
      qemu.kill("SIGKILL");
    } catch { /* exited after quit */ }
    await qemu.status;
    await qemu.stderr.cancel().catch(() => {});
    Deno.removeSync(dir, { recursive: true });
  }
});
