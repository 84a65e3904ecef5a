// Console bytes leave in one write per flush (or when the buffer fills).
import assert from "node:assert/strict";
import { ConsoleOutput } from "./console_output.ts";
import { closeFd, pipe, readInto } from "../sys/fd.ts";

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
