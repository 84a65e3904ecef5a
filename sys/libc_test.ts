import assert from "node:assert/strict";
import { libc, libcBoundSymbols, libcSymbolNames } from "./libc.ts";

Deno.test("every libc symbol of the table resolves and binds to a function", () => {
  // Binding is lazy, so a misspelt name would otherwise fail only at its first use.
  for (const name of libcSymbolNames()) {
    assert.equal(typeof (libc as unknown as Record<string, unknown>)[name], "function", name);
  }
  assert.deepEqual(libcBoundSymbols().sort(), libcSymbolNames().sort());
  assert.equal(libc.getpid(), Deno.pid);
});

Deno.test("a fresh isolate binds only the hot-path aliases until a symbol is used", async () => {
  const src = `import { libc, libcBoundSymbols } from ${
    JSON.stringify(import.meta.resolve("./libc.ts"))
  };
    const before = libcBoundSymbols();
    const pid = libc.getpid();
    postMessage({ before, after: libcBoundSymbols(), pid });`;
  const w = new Worker(`data:text/javascript,${encodeURIComponent(src)}`, { type: "module" });
  try {
    const got = await new Promise<{ before: string[]; after: string[]; pid: number }>(
      (resolve, reject) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => reject(new Error(e.message));
      },
    );
    assert.deepEqual(got.before.sort(), [
      "memcpy",
      "read_i32",
      "readv_i32",
      "write_i32",
      "writev_i32",
    ]);
    assert.deepEqual(got.after.sort(), [...got.before, "getpid"].sort());
    assert.equal(got.pid, Deno.pid);
  } finally {
    w.terminate();
  }
});
