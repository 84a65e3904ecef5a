// vhost-net: ioctl numbers and layouts against <linux/vhost.h>, and (where
// /dev/vhost-net exists) a ping through the kernel data path.
import assert from "node:assert/strict";
import { VHOST_ABI, vhostNetAvailable } from "./vhost_net.ts";
import { featureBit } from "./constants.ts";
import { VIRTIO_NET_F_MAC, VIRTIO_NET_F_MRG_RXBUF } from "./net_constants.ts";
import { icmpEchoFrame, NET_TESTS_UNAVAILABLE, until, withNetRig } from "./_net_test_rig.ts";
import { NET_RX_QUEUE, NET_TX_QUEUE } from "./net.ts";

Deno.test("vhost ioctls and structs match <linux/vhost.h>", async () => {
  const names = Object.keys(VHOST_ABI);
  const src = [
    "#include <stdio.h>",
    "#include <stddef.h>",
    "#include <linux/vhost.h>",
    "int main(void) {",
    ...names.map((n) => `printf("${n} %lu\\n", (unsigned long)(${n}));`),
    "return 0; }",
  ].join("\n");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/p.c`, src);
    const cc = await new Deno.Command("cc", { args: ["-o", `${dir}/p`, `${dir}/p.c`] }).output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const out = new TextDecoder().decode((await new Deno.Command(`${dir}/p`).output()).stdout);
    const c = new Map(
      out.trim().split("\n").map((l) => {
        const i = l.lastIndexOf(" ");
        return [l.slice(0, i), Number(l.slice(i + 1))] as const;
      }),
    );
    const wrong = Object.entries(VHOST_ABI).filter(([k, v]) => c.get(k) !== v)
      .map(([k, v]) => `${k}: ours ${v}, C ${c.get(k)}`);
    assert.deepEqual(wrong, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const why = vhostNetAvailable();
if (why) console.log(`vhost-net data path test not run here: ${why}`);

Deno.test({
  name: "vhost-net: a ping sent on TX is answered on RX through the kernel data path",
  ignore: why !== null || NET_TESTS_UNAVAILABLE !== null,
  fn: async () => {
    await withNetRig(async (r) => {
      assert.ok(r.drv.init(featureBit(VIRTIO_NET_F_MAC) | featureBit(VIRTIO_NET_F_MRG_RXBUF)));
      const rx = r.drv.queues[NET_RX_QUEUE];
      for (let i = 0; i < 16; i++) {
        assert.ok(rx.add([{ addr: 0x40_0000 + i * 0x1000, len: 0x1000, write: true }]) >= 0);
      }
      r.drv.kick(NET_RX_QUEUE);
      const payload = new TextEncoder().encode("vhost ping");
      const frame = icmpEchoFrame(r.hostMac, 3, payload);
      r.mem.write(0xc0_0000, new Uint8Array(12));
      r.mem.write(0xc0_0100, frame);
      r.drv.queues[NET_TX_QUEUE].add([{ addr: 0xc0_0000, len: 12 }, {
        addr: 0xc0_0100,
        len: frame.length,
      }]);
      r.drv.kick(NET_TX_QUEUE);
      let found = false;
      await until(() => {
        for (const u of rx.collect()) {
          const f = r.mem.slice(0x40_0000 + (u.id % 16) * 0x1000 + 12, u.len - 12);
          if (f[23] === 1 && f[34] === 0) found = true;
        }
        return found;
      });
      assert.ok(r.sink.raised >= 1, "the RX used buffer raised an interrupt");
    }, { vhost: true });
  },
});
