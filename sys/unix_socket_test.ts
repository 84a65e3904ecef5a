import assert from "node:assert/strict";
import {
  acceptConnection,
  SocketPathError,
  socketPathState,
  socketRecv,
  socketSend,
  unixConnect,
  unixListen,
} from "./unix_socket.ts";
import { closeFd } from "./fd.ts";

const enc = new TextEncoder();

Deno.test("unixListen makes a 0600 socket that a client reaches both ways", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/a.sock`;
  const l = unixListen(path);
  try {
    const st = Deno.lstatSync(path);
    assert.equal(st.isSocket, true);
    assert.equal(st.mode! & 0o777, 0o600);
    assert.equal(acceptConnection(l), -1, "nothing pending yet");
    const c = unixConnect(path);
    const s = acceptConnection(l);
    assert.ok(s >= 0);
    assert.equal(socketSend(c, enc.encode("ping")), 4);
    const buf = new Uint8Array(16);
    assert.equal(socketRecv(s, buf), 4);
    assert.equal(new TextDecoder().decode(buf.subarray(0, 4)), "ping");
    assert.equal(socketRecv(s, buf), -1, "non-blocking: nothing more yet");
    closeFd(c);
    assert.equal(socketRecv(s, buf), 0, "end of stream after the peer closed");
    // Sending to a vanished peer is an error, not a SIGPIPE that kills us.
    assert.throws(() => {
      for (let i = 0; i < 4; i++) socketSend(s, enc.encode("x"));
    }, /EPIPE|ECONNRESET/);
    closeFd(s);
  } finally {
    closeFd(l);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("unixListen replaces a stale socket, refuses live sockets and other files", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/q.sock`;
    assert.equal(socketPathState(path), "absent");
    const first = unixListen(path);
    assert.equal(socketPathState(path), "live-socket");
    assert.throws(() => unixListen(path), SocketPathError);
    closeFd(first); // the file stays: a stale socket, as after a crash
    assert.equal(socketPathState(path), "stale-socket");
    const second = unixListen(path);
    closeFd(second);
    const file = `${dir}/notes.txt`;
    Deno.writeTextFileSync(file, "keep me");
    assert.equal(socketPathState(file), "not-socket");
    assert.throws(() => unixListen(file), /not a socket/);
    assert.equal(Deno.readTextFileSync(file), "keep me");
    assert.throws(() => unixListen(`${dir}/${"x".repeat(120)}`), /too long/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
