// The serial console without KVM: bytes written to its pipe (as vCPU
// threads do) reach waitFor and the readable streams through a real main
// loop; input reaches a UART-like sink that takes a few bytes at a time.
import assert from "node:assert/strict";
import { SerialConsole, SerialTimeoutError } from "./serial_console.ts";
import { MainLoop } from "../mainloop/main_loop.ts";
import { writeAll } from "../sys/fd.ts";

function guestWrites(c: SerialConsole, text: string): void {
  writeAll(c.writeFd, new TextEncoder().encode(text));
}

async function withConsole(fn: (c: SerialConsole, loop: MainLoop) => Promise<void>) {
  const loop = new MainLoop();
  const running = loop.run();
  const c = new SerialConsole(loop);
  try {
    await fn(c, loop);
  } finally {
    c.close();
    loop.stop();
    await running;
    loop.close();
  }
}

Deno.test("waitFor matches output in order, each search after the last match", async () => {
  await withConsole(async (c) => {
    const login = c.waitFor(/login: ?$/m, { timeoutMs: 5000 });
    guestWrites(c, "Debian GNU/Linux\nhost login: ");
    assert.equal((await login)[0], "login: ");
    guestWrites(c, "# uname -r\n6.1.0-50-amd64\n# ");
    const m = await c.waitFor(/(\d+\.\d+\.\d+)-\d+-amd64/, { timeoutMs: 5000 });
    assert.equal(m[1], "6.1.0");
    // The first prompt was consumed; "login" does not match again.
    await assert.rejects(c.waitFor("login", { timeoutMs: 50 }), SerialTimeoutError);
    // A literal string is not a pattern.
    guestWrites(c, "cost: $5 (a+b)\n");
    assert.ok(await c.waitFor("$5 (a+b)", { timeoutMs: 5000 }));
  });
});

Deno.test("readable streams get every byte after they are opened", async () => {
  await withConsole(async (c) => {
    guestWrites(c, "before ");
    await c.waitFor("before");
    const reader = c.readable.getReader();
    guestWrites(c, "after\n");
    const { value } = await reader.read();
    assert.equal(new TextDecoder().decode(value), "after\n");
    reader.releaseLock();
  });
});

Deno.test("write() resolves once a slow sink took every byte; offer() never overtakes it", async () => {
  await withConsole(async (c) => {
    const got: number[] = [];
    let room = 0;
    c.input = (bytes) => {
      const n = Math.min(room, bytes.length);
      for (let i = 0; i < n; i++) got.push(bytes[i]);
      room -= n;
      return n;
    };
    const done = c.write("hello");
    let resolved = false;
    done.then(() => resolved = true);
    // Nothing fits yet: offer() must not jump the queue.
    assert.equal(c.offer(new Uint8Array([0x21])), 0);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(resolved, false);
    room = 3;
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(String.fromCharCode(...got), "hel");
    room = 100;
    await done;
    assert.equal(String.fromCharCode(...got), "hello");
    assert.equal(c.offer(new Uint8Array([0x21])), 1);
  });
});

Deno.test("close() fails pending waits and ends the streams", async () => {
  const loop = new MainLoop();
  const running = loop.run();
  const c = new SerialConsole(loop);
  const waiting = c.waitFor("never");
  const reader = c.readable.getReader();
  c.close();
  await assert.rejects(waiting, /ended before the output matched/);
  assert.equal((await reader.read()).done, true);
  loop.stop();
  await running;
  loop.close();
});
