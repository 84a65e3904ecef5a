import assert from "node:assert/strict";
import { GuestMemory } from "../memory/guest_memory.ts";
import { encodeCmdline, writeCmdline } from "./cmdline.ts";
import { KernelLoaderError } from "./kernel_loader_error.ts";
import { CMDLINE_START } from "./layout.ts";

Deno.test("encodeCmdline NUL-terminates and enforces the kernel's limit", () => {
  assert.deepEqual(encodeCmdline("ab", 2), new Uint8Array([0x61, 0x62, 0]));
  assert.deepEqual(encodeCmdline("", 0), new Uint8Array([0]));
  assert.throws(() => encodeCmdline("abc", 2), KernelLoaderError);
  assert.throws(() => encodeCmdline("a\0", 100), /NUL/);
  // UTF-8 counts bytes, not characters.
  assert.throws(() => encodeCmdline("é", 1), /too long: 2 bytes/);
  // The reserved area caps it whatever the kernel says.
  assert.throws(() => encodeCmdline("x".repeat(0x10000), 0xffffffff), /accepts 65535/);
});

Deno.test("writeCmdline writes at CMDLINE_START", () => {
  const mem = GuestMemory.fromBuffer(new ArrayBuffer(1 << 20));
  const r = writeCmdline(mem, encodeCmdline("quiet", 100));
  assert.deepEqual(r, { addr: CMDLINE_START, size: 6 });
  assert.equal(new TextDecoder().decode(mem.slice(CMDLINE_START, 6)), "quiet\0");
});
