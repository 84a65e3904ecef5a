import assert from "node:assert/strict";
import { desEncryptBlock, vncAuthResponse, vncKey } from "./des.ts";

const hex = (s: string) => new Uint8Array(s.match(/../g)!.map((h) => parseInt(h, 16)));
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("DES known-answer vectors (FIPS 81 / textbook)", () => {
  assert.equal(
    toHex(desEncryptBlock(hex("133457799bbcdff1"), hex("0123456789abcdef"))),
    "85e813540f0ab405",
  );
  // FIPS 81 appendix B (ECB): "Now is t" with key 0123456789abcdef.
  assert.equal(
    toHex(desEncryptBlock(hex("0123456789abcdef"), hex("4e6f772069732074"))),
    "3fa40e8a984d4815",
  );
  assert.equal(
    toHex(desEncryptBlock(hex("0000000000000000"), hex("0000000000000000"))),
    "8ca64de9c1b123a7",
  );
});

Deno.test("DES agrees with openssl on random keys and blocks", async () => {
  const ok = await new Deno.Command("openssl", {
    args: ["version"],
    stdout: "null",
    stderr: "null",
  })
    .output().then((o) => o.success, () => false);
  if (!ok) {
    console.log("openssl not installed: cross-check skipped");
    return;
  }
  for (let i = 0; i < 4; i++) {
    const key = crypto.getRandomValues(new Uint8Array(8));
    const block = crypto.getRandomValues(new Uint8Array(8));
    const p = new Deno.Command("openssl", {
      args: [
        "enc",
        "-des-ecb",
        "-K",
        toHex(key),
        "-nopad",
        "-provider",
        "legacy",
        "-provider",
        "default",
      ],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const w = p.stdin.getWriter();
    await w.write(block);
    await w.close();
    const out = await p.output();
    assert.equal(toHex(desEncryptBlock(key, block)), toHex(out.stdout));
  }
});

Deno.test("VNC key mirrors each password byte and pads with zeros", () => {
  assert.equal(toHex(vncKey(new TextEncoder().encode("ab"))), "8646000000000000");
  assert.equal(vncKey(new TextEncoder().encode("123456789")).length, 8);
  const c = hex("00112233445566778899aabbccddeeff");
  const r = vncAuthResponse(new TextEncoder().encode("secret"), c);
  assert.equal(
    toHex(r),
    toHex(desEncryptBlock(vncKey(new TextEncoder().encode("secret")), c.subarray(0, 8))) +
      toHex(desEncryptBlock(vncKey(new TextEncoder().encode("secret")), c.subarray(8))),
  );
  assert.notEqual(toHex(r), toHex(vncAuthResponse(new TextEncoder().encode("secreT"), c)));
});
