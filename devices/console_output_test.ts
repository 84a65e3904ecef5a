// Console bytes leave in one write per flush (or when the buffer fills).
import assert from "node:assert/strict";
import { ConsoleOutput } from "./console_output.ts";
import { closeFd, pipe, readInto } from "../sys/fd.ts";
import { writeI32 } from "../sys/libc.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("ConsoleOutput batches bytes into one write per flush", () => {
  const [r, w] = pipe();
  try {
    const out = new ConsoleOutput(w, 8);
    for (const b of enc("hello")) out.push(b);
    assert.equal(out.buffered, 5);
    const buf = new Uint8Array(64);
    out.flush();
    assert.equal(readInto(r, buf), 5);
    for (const b of enc("0123456789")) out.push(b); // fills at 8
    assert.equal(out.buffered, 2);
    out.flush();
    assert.equal(new TextDecoder().decode(buf.subarray(0, readInto(r, buf))), "0123456789");
    out.flush();
  } finally {
    closeFd(r);
    closeFd(w);
  }
});

Deno.test("a console whose reader is gone drops output, never the vCPU", () => {
  const [r, w] = pipe();
  closeFd(r);
  try {
    const out = new ConsoleOutput(w, 8);
    for (const b of enc("lost")) out.push(b);
    out.flush(); // EPIPE (SIGPIPE is ignored by Deno)
    assert.equal(out.buffered, 0);
  } finally {
    closeFd(w);
  }
});

Deno.test("a partial write sends the rest, in order, once the reader catches up", async () => {
  const [r, w] = pipe(true);
  const filler = new Uint8Array(4096);
  let queued = 0;
  for (;;) {
    const n = writeI32(w, filler, filler.length);
    if (n < 0) break; // EAGAIN: the pipe is full
    queued += n;
  }
  // The reader starts draining once flush() spins on the full pipe, in reads
  // smaller than a pipe page, so the flush's writes come back partial.
  const src = `
    const { readInto } = await import(${
    JSON.stringify(new URL("../sys/fd.ts", import.meta.url).href)
  });
    self.onmessage = (e) => {
      const { fd, total } = e.data;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
      const all = new Uint8Array(total);
      const buf = new Uint8Array(1000);
      let got = 0;
      while (got < total) {
        const n = readInto(fd, buf.subarray(0, Math.min(buf.length, total - got)));
        if (n > 0) all.set(buf.subarray(0, n), got), got += n;
      }
      self.postMessage(all, [all.buffer]);
    };`;
  const reader = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), {
    type: "module",
  });
  try {
    const message = 10_000;
    const out = new ConsoleOutput(w, 16384);
    for (let i = 0; i < message; i++) out.push(i % 251);
    const drained = new Promise<Uint8Array>((res) => (reader.onmessage = (e) => res(e.data)));
    reader.postMessage({ fd: r, total: queued + message });
    out.flush();
    assert.equal(out.buffered, 0);
    const all = await drained;
    const tail = all.subarray(queued);
    for (let i = 0; i < message; i++) {
      if (tail[i] !== i % 251) assert.fail(`byte ${i}: ${tail[i]}, expected ${i % 251}`);
    }
  } finally {
    reader.terminate();
    closeFd(r);
    closeFd(w);
  }
});
