import assert from "node:assert/strict";
import { acceptSocket, listenSocket, localPort, recvSome, sendSome, sockaddr } from "./socket.ts";
import { closeFd } from "./fd.ts";

Deno.test("sockaddr parses IPv4 and IPv6 literals and refuses names", () => {
  const v4 = sockaddr({ host: "127.0.0.1", port: 5901 });
  assert.equal(v4.family, 2);
  assert.deepEqual([...v4.bytes.subarray(2, 8)], [0x17, 0x0d, 127, 0, 0, 1]);
  const v6 = sockaddr({ host: "::1", port: 1 });
  assert.equal(v6.family, 10);
  assert.equal(v6.bytes[23], 1);
  assert.equal(v6.bytes.subarray(8, 23).every((b) => b === 0), true);
  const full = sockaddr({ host: "[fe80::1:2]", port: 1 });
  assert.deepEqual([...full.bytes.subarray(8, 10)], [0xfe, 0x80]);
  assert.deepEqual([...full.bytes.subarray(20, 24)], [0, 1, 0, 2]);
  assert.throws(() => sockaddr({ host: "example.com", port: 1 }), TypeError);
  assert.throws(() => sockaddr({ host: "1.2.3.256", port: 1 }), TypeError);
  assert.throws(() => sockaddr({ host: "::1::2", port: 1 }), TypeError);
  assert.throws(() => sockaddr({ host: "127.0.0.1", port: 70000 }), RangeError);
});

Deno.test("a listener accepts a Deno client and moves bytes both ways", async () => {
  const fd = listenSocket({ host: "127.0.0.1", port: 0 });
  const port = localPort(fd);
  assert.equal(acceptSocket(fd), -1); // nothing pending: no block
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  let c = -1;
  for (let i = 0; i < 100 && c < 0; i++) {
    c = acceptSocket(fd);
    if (c < 0) await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(c >= 0);
  assert.equal(sendSome(c, new Uint8Array([1, 2, 3])), 3);
  const got = new Uint8Array(3);
  assert.equal(await client.read(got), 3);
  assert.deepEqual([...got], [1, 2, 3]);
  const buf = new Uint8Array(8);
  assert.equal(recvSome(c, buf), -11);
  await client.write(new Uint8Array([9]));
  let n = -11;
  for (let i = 0; i < 100 && n === -11; i++) {
    n = recvSome(c, buf);
    if (n === -11) await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(n, 1);
  client.close();
  for (let i = 0; i < 100 && n !== 0; i++) {
    n = recvSome(c, buf);
    if (n !== 0) await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(n, 0); // end of stream
  closeFd(c);
  closeFd(fd);
});

Deno.test("binding a port in use names the address and errno", () => {
  const fd = listenSocket({ host: "127.0.0.1", port: 0 });
  try {
    assert.throws(
      () => listenSocket({ host: "127.0.0.1", port: localPort(fd) }),
      /bind 127\.0\.0\.1:\d+.*EADDRINUSE/,
    );
  } finally {
    closeFd(fd);
  }
});
