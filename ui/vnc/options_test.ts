import assert from "node:assert/strict";
import { parseVncOption, passwordFromFile } from "./options.ts";

Deno.test("--vnc spelled as QEMU: loopback unless a host is named", () => {
  assert.deepEqual(parseVncOption(":0"), { host: "127.0.0.1", port: 5900, display: 0 });
  assert.deepEqual(parseVncOption("0.0.0.0:3"), { host: "0.0.0.0", port: 5903, display: 3 });
  assert.deepEqual(parseVncOption("[::1]:1").host, "::1");
  assert.deepEqual(parseVncOption(":1,websocket").websocketPort, 5701);
  assert.deepEqual(parseVncOption(":1,websocket=on").websocketPort, 5701);
  assert.deepEqual(parseVncOption(":1,websocket=6080,password-file=/tmp/pw"), {
    host: "127.0.0.1",
    port: 5901,
    display: 1,
    websocketPort: 6080,
    passwordFile: "/tmp/pw",
  });
  assert.equal(parseVncOption(":1,tablet=off").tablet, false);
  assert.equal(parseVncOption(":1,tablet=on").tablet, true);
  assert.equal(parseVncOption(":1").tablet, undefined);
  for (
    const bad of [
      "",
      "1",
      "host:1",
      ":x",
      ":60000",
      "300.1.1.1:0",
      ":0,password=x",
      ":0,foo",
      ":0,websocket=abc",
      ":0,password-file=",
      ":0,tablet",
      ":0,tablet=no",
    ]
  ) {
    assert.throws(() => parseVncOption(bad), TypeError, bad);
  }
});

Deno.test("the password is the file's first line", () => {
  const e = new TextEncoder();
  assert.deepEqual(passwordFromFile(e.encode("hunter2\nrest")), e.encode("hunter2"));
  assert.deepEqual(passwordFromFile(e.encode("pw\r\n")), e.encode("pw"));
  assert.throws(() => passwordFromFile(e.encode("\nx")), /empty/);
});
