// QMP set_link, x-query-net and the NIC counters in the statistics, end to
// end without root: a QMP client talks to the server on a main loop, the
// virtio-net device sits on its own (hand-driven) loop behind a socket tap,
// and they meet only through the NIC's shared control buffer and eventfd,
// as across threads in the VMM.
import assert from "node:assert/strict";
import { MainLoop } from "../mainloop/main_loop.ts";
import { QmpServer } from "../qmp/server.ts";
import { FakeTarget, TestClient } from "../qmp/_test_client.ts";
import { closeFd, eventFd } from "../sys/fd.ts";
import { libc } from "../sys/libc.ts";
import { VirtioNet } from "../devices/virtio/net.ts";
import { watchLinkControl } from "../devices/virtio/net_backend.ts";
import { netControlBuffer } from "../devices/virtio/net_types.ts";
import { VIRTIO_NET_CFG_STATUS, VIRTIO_NET_HDR_SIZE } from "../devices/virtio/net_constants.ts";
import { socketNetRig } from "../devices/virtio/_net_fake_tap.ts";
import type { ResolvedNetDevices } from "./net_devices.ts";
import { nicInfo, setNicLink, withNicQueryStats, withNicStats } from "./nic_control.ts";
import type { Tap } from "../sys/tun.ts";

Deno.test("QMP set_link toggles the guest-visible link; NIC counters reach the statistics", async () => {
  const buffer = netControlBuffer();
  const linkFd = eventFd();
  const r = socketNetRig((o) => new VirtioNet({ ...o, control: buffer }), [64, 64]);
  const unwatch = watchLinkControl(r.loop, r.device, buffer, linkFd);
  const net: ResolvedNetDevices = {
    nics: [{
      options: { ifname: "fake0", mac: "52:54:00:ab:cd:ef", vhost: false, id: "lan0" },
      tap: r.tap as Tap,
    }, {
      options: { ifname: "fake1", mac: "52:54:00:ab:cd:f0", vhost: true },
      tap: r.tap as Tap,
    }],
    controls: [{ buffer, linkFd }, { buffer: netControlBuffer(), linkFd: eventFd() }],
    rng: false,
    console: "none",
  };
  const dir = Deno.makeTempDirSync();
  const loop = new MainLoop();
  const running = loop.run();
  const target = Object.assign(new FakeTarget(), {
    nets: () => nicInfo(net),
    setLink: (name: string, up: boolean) => setNicLink(net, name, up),
    stats: () => withNicStats({ vcpus: [] }, nicInfo(net)),
    queryStats: (t: "vm" | "vcpu") => withNicQueryStats([], t, nicInfo(net)),
  });
  const server = QmpServer.listen(loop, `${dir}/qmp.sock`, target);
  const c = new TestClient(`${dir}/qmp.sock`);
  try {
    await c.next();
    await c.call("qmp_capabilities");
    assert.ok(r.drv.init(0n));
    assert.equal(r.drv.config(VIRTIO_NET_CFG_STATUS, 2), 1, "link up at start");
    const irqs = r.sink.raised;

    assert.deepEqual(await c.call("set_link", { name: "lan0", up: false }), { return: {} });
    assert.ok(r.loop.readable(linkFd), "the device's loop is told");
    assert.equal(r.device.linkUp, false);
    assert.equal(r.drv.config(VIRTIO_NET_CFG_STATUS, 2), 0, "config status says down");
    assert.equal(r.sink.raised, irqs + 1, "a config interrupt");
    const down = (await c.call("x-query-net")).return as { name: string; up: boolean }[];
    assert.deepEqual(down.map((n) => [n.name, n.up]), [["lan0", false], ["net1", true]]);

    // Back up by tap name; a frame then counts.
    assert.deepEqual(await c.call("set_link", { name: "fake0", up: true }), { return: {} });
    r.loop.readable(linkFd);
    assert.equal(r.drv.config(VIRTIO_NET_CFG_STATUS, 2), 1);
    const q = r.drv.queues[0];
    q.add([{ addr: 0x40_0000, len: 2048, write: true }]);
    r.drv.kick(0);
    const frame = new Uint8Array(VIRTIO_NET_HDR_SIZE + 60).fill(7);
    assert.equal(Number(libc.write(r.tap.peer, frame, BigInt(frame.length))), frame.length);
    r.loop.readable(r.tap.fd);
    assert.equal(q.collect().length, 1);

    const s = (await c.call("x-query-denovmm-stats")).return as {
      nics: { name: string; ifname: string; stats: Record<string, number> }[];
    };
    assert.equal(s.nics[0].ifname, "fake0");
    assert.equal(s.nics[0].stats["rx-packets"], 1);
    assert.equal(s.nics[0].stats["rx-bytes"], 60);
    assert.equal(s.nics[0].stats["tx-packets"], 0);
    const qs = (await c.call("query-stats", { target: "vm" })).return as {
      stats: { name: string; value: number }[];
    }[];
    const named = new Map(qs[0].stats.map((e) => [e.name, e.value]));
    assert.equal(named.get("lan0-rx-packets"), 1);
    assert.equal(named.get("lan0-rx-bytes"), 60);
    assert.equal(named.get("net1-tx-packets"), 0);

    // QEMU's errors.
    const missing = await c.call("set_link", { name: "nope", up: true });
    assert.deepEqual(missing.error, { class: "DeviceNotFound", desc: "Device 'nope' not found" });
    const vhost = await c.call("set_link", { name: "net1", up: false });
    assert.match((vhost.error as { desc: string }).desc, /not supported with vhost=on/);
    const bad = await c.call("set_link", { name: "lan0" });
    assert.equal((bad.error as { desc: string }).desc, "Parameter 'up' is missing");
  } finally {
    c.close();
    server.close();
    loop.stop();
    await running;
    loop.close();
    unwatch();
    r.close();
    closeFd(linkFd);
    closeFd(net.controls[1].linkFd);
    Deno.removeSync(dir, { recursive: true });
  }
});
