import assert from "node:assert/strict";
import { closeFd, pipe, writeAll } from "../sys/fd.ts";
import type { Bh, ClockType, EventLoop, FdHandlers, Timer } from "../mainloop/types.ts";
import { CTRL_A, makeRaw, Terminal, TERMIOS, TERMIOS_OFFSETS, TERMIOS_SIZE } from "./terminal.ts";

/** Just enough of the main loop: fd handlers and timers fired by hand. */
class FakeLoop implements EventLoop {
  handlers = new Map<number, FdHandlers>();
  timers: { cb: () => void; at: number; armed: boolean }[] = [];
  clock = 0;
  setFdHandler(fd: number, h: FdHandlers | null): void {
    if (h) this.handlers.set(fd, h);
    else this.handlers.delete(fd);
  }
  bh(_cb: () => void): Bh {
    throw new Error("not used");
  }
  timer(_clock: ClockType, cb: () => void): Timer {
    const t = { cb, at: 0, armed: false };
    this.timers.push(t);
    return {
      mod: (ns: number) => {
        t.at = ns;
        t.armed = true;
      },
      del: () => {
        t.armed = false;
      },
      get pending() {
        return t.armed;
      },
    };
  }
  now(_clock: ClockType): number {
    return this.clock;
  }
  notify(): void {}
  /** Runs the read handler of every registered fd once. */
  poll(): void {
    for (const h of [...this.handlers.values()]) h.read?.();
  }
  fireTimers(): void {
    for (const t of this.timers) {
      if (t.armed) {
        t.armed = false;
        t.cb();
      }
    }
  }
}

const enc = (s: string) => new TextEncoder().encode(s);

function pipeTerminal(opts: Partial<ConstructorParameters<typeof Terminal>[0]> = {}) {
  const [r, w] = pipe();
  const loop = new FakeLoop();
  const got: number[] = [];
  const said: string[] = [];
  let quits = 0, eofs = 0;
  const term = new Terminal({
    loop,
    fd: r,
    onInput: (b) => {
      got.push(...b);
    },
    onQuit: () => quits++,
    onEof: () => eofs++,
    output: (t) => said.push(t),
    ...opts,
  });
  return {
    r,
    w,
    loop,
    got,
    said,
    term,
    get quits() {
      return quits;
    },
    get eofs() {
      return eofs;
    },
  };
}

Deno.test("termios layout and flags match <termios.h>", async () => {
  const src = `#include <stdio.h>
#include <stddef.h>
#include <termios.h>
int main(void) {
  printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu\\n", sizeof(struct termios),
    offsetof(struct termios, c_iflag), offsetof(struct termios, c_oflag),
    offsetof(struct termios, c_cflag), offsetof(struct termios, c_lflag),
    offsetof(struct termios, c_line), offsetof(struct termios, c_cc),
    offsetof(struct termios, c_ispeed), offsetof(struct termios, c_ospeed));
  printf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d\\n", IGNBRK, BRKINT,
    PARMRK, ISTRIP, INLCR, IGNCR, ICRNL, IXON, OPOST, ISIG, ICANON, ECHO, ECHONL, IEXTEN,
    CSIZE, CS8, PARENB, VTIME, VMIN, TCSANOW, TCSAFLUSH);
  return 0;
}`;
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/p.c`, src);
    let cc;
    try {
      cc = await new Deno.Command("gcc", { args: ["-o", `${dir}/p`, `${dir}/p.c`] }).output();
    } catch {
      // gcc missing: nothing to compare against
      console.warn("gcc not found; termios probe skipped");
      return;
    }
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const out = await new Deno.Command(`${dir}/p`).output();
    const [layout, flags] = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) =>
      l.split(" ").map(Number)
    );
    const o = TERMIOS_OFFSETS;
    assert.deepEqual(layout, [
      TERMIOS_SIZE,
      o.c_iflag,
      o.c_oflag,
      o.c_cflag,
      o.c_lflag,
      o.c_line,
      o.c_cc,
      o.c_ispeed,
      o.c_ospeed,
    ]);
    const T = TERMIOS;
    assert.deepEqual(flags, [
      T.IGNBRK,
      T.BRKINT,
      T.PARMRK,
      T.ISTRIP,
      T.INLCR,
      T.IGNCR,
      T.ICRNL,
      T.IXON,
      T.OPOST,
      T.ISIG,
      T.ICANON,
      T.ECHO,
      T.ECHONL,
      T.IEXTEN,
      T.CSIZE,
      T.CS8,
      T.PARENB,
      T.VTIME,
      T.VMIN,
      T.TCSANOW,
      T.TCSAFLUSH,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("makeRaw clears line discipline bits and keeps output processing", () => {
  const t = new Uint8Array(TERMIOS_SIZE).fill(0xff);
  makeRaw(t);
  const v = new DataView(t.buffer);
  const T = TERMIOS;
  assert.equal(v.getUint32(0, true) & (T.ICRNL | T.IXON | T.BRKINT | T.ISTRIP), 0);
  assert.equal(v.getUint32(4, true) & T.OPOST, T.OPOST);
  assert.equal(v.getUint32(8, true) & (T.CSIZE | T.PARENB), T.CS8);
  assert.equal(v.getUint32(12, true) & (T.ECHO | T.ICANON | T.ISIG | T.IEXTEN), 0);
  assert.equal(t[17 + T.VMIN], 1);
  assert.equal(t[17 + T.VTIME], 0);
  makeRaw(t.fill(0xff), { allowSignals: true });
  assert.equal(v.getUint32(12, true) & T.ISIG, T.ISIG);
  assert.throws(() => makeRaw(new Uint8Array(10)), RangeError);
});

Deno.test("terminal on a pipe: no raw mode, bytes verbatim, EOF stops input", () => {
  const p = pipeTerminal();
  try {
    assert.equal(p.term.isTty, false);
    p.term.start();
    assert.equal(p.term.rawMode, false);
    assert.equal(p.loop.handlers.size, 1);
    p.loop.poll(); // nothing there yet: EAGAIN, not EOF
    assert.equal(p.eofs, 0);
    writeAll(p.w, enc("ab\x01xc"));
    p.loop.poll();
    assert.deepEqual(p.got, [...enc("ab\x01xc")], "no escapes on a pipe by default");
    assert.equal(p.quits, 0);
    closeFd(p.w);
    p.loop.poll();
    assert.equal(p.eofs, 1);
    assert.equal(p.loop.handlers.size, 0);
  } finally {
    p.term.close();
    closeFd(p.r);
  }
});

Deno.test("terminal Ctrl-A escapes: x quits, h helps, Ctrl-A Ctrl-A sends one", () => {
  const keys: number[] = [];
  const p = pipeTerminal({ escape: CTRL_A, onEscape: (k) => keys.push(k) });
  try {
    p.term.start();
    writeAll(p.w, enc("a\x01\x01b\x01h\x01c"));
    p.loop.poll();
    assert.deepEqual(p.got, [0x61, 0x01, 0x62]);
    assert.equal(p.said.length, 1);
    assert.match(p.said[0], /quit/);
    assert.deepEqual(keys, [0x63]);
    writeAll(p.w, enc("d\x01")); // escape split across reads
    p.loop.poll();
    writeAll(p.w, enc("xe"));
    p.loop.poll();
    assert.deepEqual(p.got, [0x61, 0x01, 0x62, 0x64]);
    assert.equal(p.quits, 1);
  } finally {
    p.term.close();
    closeFd(p.r);
    closeFd(p.w);
  }
});

Deno.test("terminal holds input the guest has not taken and retries", () => {
  const [r, w] = pipe();
  const loop = new FakeLoop();
  const got: number[] = [];
  let room = 3;
  const term = new Terminal({
    loop,
    fd: r,
    onQuit: () => {},
    onInput: (b) => {
      const n = Math.min(room, b.length);
      got.push(...b.subarray(0, n));
      room -= n;
      return n;
    },
  });
  try {
    term.start();
    writeAll(w, enc("0123456789"));
    loop.poll();
    assert.deepEqual(got, [...enc("012")]);
    assert.equal(term.pending, 7);
    assert.equal(loop.timers[0].armed, true);
    room = 4;
    loop.fireTimers();
    assert.equal(term.pending, 3);
    room = 100;
    term.resume();
    assert.equal(new TextDecoder().decode(new Uint8Array(got)), "0123456789");
    assert.equal(loop.timers[0].armed, false);
    // With the guest not reading, stdin is read until the buffer is full.
    room = 0;
    const big = new Uint8Array(5000).fill(0x41);
    writeAll(w, big);
    for (let i = 0; i < 5 && loop.handlers.size > 0; i++) loop.poll();
    assert.equal(term.pending, 4096);
    assert.equal(loop.handlers.size, 0, "stops reading while full");
    room = 10;
    loop.fireTimers();
    assert.equal(loop.handlers.size, 1, "reads again once there is room");
    room = 1e9;
    loop.fireTimers();
    loop.poll();
    assert.equal(got.length, 10 + 5000);
  } finally {
    term.close();
    closeFd(r);
    closeFd(w);
  }
});

const PTY_DRIVER = `
import json, os, pty, subprocess, sys, termios
deno, child = sys.argv[1:3]
results = {}
for mode in sys.argv[3:]:
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    p = subprocess.Popen([deno, "run", "-A", "--no-check", child, mode],
                         stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    after = termios.tcgetattr(slave)
    results[mode] = {"rc": p.returncode, "out": out.decode(), "err": err.decode()[-300:],
                     "restored": before == after}
    os.close(master)
    os.close(slave)
print(json.dumps(results))
`;

const PTY_CHILD = (termUrl: string, libcUrl: string) => `
import { Terminal, TERMIOS_SIZE } from ${JSON.stringify(termUrl)};
import { libc } from ${JSON.stringify(libcUrl)};
const loop = {
  setFdHandler() {}, bh() { throw new Error("unused"); }, notify() {}, now() { return 0; },
  timer() { return { mod() {}, del() {}, pending: false }; },
};
const term = new Terminal({ loop, onInput() {}, onQuit() {} });
term.start();
const t = new Uint8Array(TERMIOS_SIZE);
libc.tcgetattr(0, t);
const lflag = new DataView(t.buffer).getUint32(12, true);
console.log(JSON.stringify({ tty: term.isTty, raw: term.rawMode, lflag }));
const mode = Deno.args[0];
if (mode === "close") term.close();
else if (mode === "exit") Deno.exit(3);
else if (mode === "throw") throw new Error("boom");
else if (mode === "reject") Promise.reject(new Error("boom"));
else if (mode === "sigterm" || mode === "sighup") {
  Deno.kill(Deno.pid, mode === "sigterm" ? "SIGTERM" : "SIGHUP");
  await new Promise((r) => setTimeout(r, 10000));
}
// "forget": no close; the process ends when the event loop is empty.
`;

Deno.test("terminal raw mode on a pty is restored on every way out", async () => {
  let python = true;
  try {
    await new Deno.Command("python3", { args: ["-c", "import pty"] }).output();
  } catch {
    python = false;
  }
  if (!python) {
    console.warn("python3 not found; pty test skipped");
    return;
  }
  const dir = await Deno.makeTempDir();
  try {
    const child = `${dir}/child.ts`;
    await Deno.writeTextFile(
      child,
      PTY_CHILD(
        new URL("./terminal.ts", import.meta.url).href,
        new URL("../sys/libc.ts", import.meta.url).href,
      ),
    );
    const modes = ["close", "exit", "throw", "reject", "sigterm", "sighup", "forget"];
    const out = await new Deno.Command("python3", {
      args: ["-c", PTY_DRIVER, Deno.execPath(), child, ...modes],
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const results = JSON.parse(new TextDecoder().decode(out.stdout));
    const expectRc: Record<string, number> = {
      close: 0,
      exit: 3,
      throw: 1,
      reject: 1,
      sigterm: 143,
      sighup: 129,
      forget: 0,
    };
    for (const mode of modes) {
      const r = results[mode];
      const during = JSON.parse(r.out.trim().split("\n")[0]);
      assert.equal(during.tty, true, `${mode}: ${r.err}`);
      assert.equal(during.raw, true, mode);
      assert.equal(during.lflag & (TERMIOS.ICANON | TERMIOS.ECHO | TERMIOS.ISIG), 0, mode);
      assert.equal(r.rc, expectRc[mode], `${mode} exit status: ${r.err}`);
      assert.equal(r.restored, true, `${mode} left the terminal raw`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
