import assert from "node:assert/strict";
import { GuestMemory } from "../../memory/guest_memory.ts";
import { CountingSink, TestDriver, wireDevice } from "./_test_driver.ts";
import { VIRTIO_CONFIG_S_NEEDS_RESET } from "./constants.ts";
import { CONSOLE_RX_QUEUE, CONSOLE_TX_QUEUE, VIRTIO_ID_CONSOLE, VirtioConsole } from "./console.ts";

const BUF = 0x100000;

function setup() {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(4 << 20));
  const out: number[] = [];
  let rxSpace = 0;
  const con = new VirtioConsole({ output: (b) => out.push(...b), onRxSpace: () => rxSpace++ });
  const logs: string[] = [];
  const sink = new CountingSink();
  const { dev } = wireDevice(con, mem, { interrupt: sink, log: (m) => logs.push(m) });
  const drv = new TestDriver(mem, dev, { sizes: [16, 16] });
  assert.ok(drv.init(0xffff_ffffn));
  return { mem, out, con, drv, logs, sink, rxSpace: () => rxSpace };
}

Deno.test("virtio-console: guest output reaches the sink, in order, across segments", () => {
  const { mem, out, con, drv, sink } = setup();
  assert.equal(drv.dev.configU16(2), 0x1040 + VIRTIO_ID_CONSOLE);
  const enc = new TextEncoder();
  mem.write(BUF, enc.encode("hello "));
  mem.write(BUF + 0x100, enc.encode("hvc0\r\n"));
  const tx = drv.queues[CONSOLE_TX_QUEUE];
  tx.add([{ addr: BUF, len: 6 }, { addr: BUF + 0x100, len: 6 }]);
  drv.kick(CONSOLE_TX_QUEUE);
  assert.equal(new TextDecoder().decode(Uint8Array.from(out)), "hello hvc0\r\n");
  assert.deepEqual(tx.collect().map((u) => u.len), [0]);
  assert.equal(con.stats.outBytes, 12);
  assert.ok(sink.raised >= 1);
});

Deno.test("virtio-console: input takes only what the guest's buffers hold", () => {
  const { mem, con, drv, rxSpace } = setup();
  const rx = drv.queues[CONSOLE_RX_QUEUE];
  const input = new TextEncoder().encode("echo hi; uname -a\n");
  assert.equal(con.enqueueInput(input), 0, "no buffers yet");
  rx.add([{ addr: BUF, len: 8, write: true }]);
  rx.add([{ addr: BUF + 0x100, len: 4, write: true }]);
  const kicks = rxSpace();
  drv.kick(CONSOLE_RX_QUEUE);
  assert.equal(rxSpace(), kicks + 1);
  assert.equal(con.enqueueInput(input), 12);
  assert.deepEqual(rx.collect().map((u) => u.len), [8, 4]);
  assert.deepEqual(
    [...mem.slice(BUF, 8), ...mem.slice(BUF + 0x100, 4)],
    [...input.subarray(0, 12)],
  );
  rx.add([{ addr: BUF + 0x200, len: 64, write: true }]);
  assert.equal(con.enqueueInput(input.subarray(12)), input.length - 12);
  assert.deepEqual(
    [...mem.slice(BUF + 0x200, input.length - 12)],
    [...input.subarray(12)],
  );
});

Deno.test("virtio-console: buffers in the wrong direction mark the device broken", () => {
  const a = setup();
  a.drv.queues[CONSOLE_TX_QUEUE].add([{ addr: BUF, len: 8, write: true }]);
  a.drv.kick(CONSOLE_TX_QUEUE);
  assert.ok(a.drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET);
  assert.match(a.logs[0], /transmit buffer is device-writable/);
  const b = setup();
  b.drv.queues[CONSOLE_RX_QUEUE].add([{ addr: BUF, len: 8 }]);
  assert.equal(b.con.enqueueInput(new Uint8Array([1, 2, 3])), 0);
  assert.ok(b.drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET);
  assert.match(b.logs[0], /receive buffer is device-readable/);
  assert.equal(b.con.ready, false);
});
