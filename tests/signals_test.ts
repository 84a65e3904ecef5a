// The signal policy (sys/signals.ts, sys/no_inspector.ts) on real processes
// started with --allow-ffi alone. No KVM needed: a process holding a pty in
// raw mode the way the VMM does, and one that starts like main.ts.
import assert from "node:assert/strict";
import { libc } from "../sys/libc.ts";
import { cstring, O_NOCTTY, O_RDWR } from "../sys/fd.ts";
import { TERMIOS, TERMIOS_OFFSETS, TERMIOS_SIZE } from "../ui/terminal.ts";

const repo = new URL("..", import.meta.url).pathname;
const pty = Deno.dlopen("libc.so.6", {
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32" },
}).symbols;

/** A new pty: the master fd, the slave's path and an fd on the slave (kept open). */
function openPty(): { master: number; slave: number; path: string } {
  const master = pty.posix_openpt(O_RDWR | O_NOCTTY);
  assert.ok(master >= 0, "posix_openpt");
  assert.equal(pty.grantpt(master), 0);
  assert.equal(pty.unlockpt(master), 0);
  const name = new Uint8Array(128);
  assert.equal(pty.ptsname_r(master, name, 128n), 0);
  const path = new TextDecoder().decode(name.subarray(0, name.indexOf(0)));
  const slave = libc.open(cstring(path), O_RDWR | O_NOCTTY, 0);
  assert.ok(slave >= 0, path);
  return { master, slave, path };
}

/** Whether the terminal is in its normal (cooked) mode: canonical input with echo. */
function cooked(fd: number): boolean {
  const t = new Uint8Array(TERMIOS_SIZE);
  assert.equal(libc.tcgetattr(fd, t), 0);
  const lflag = new DataView(t.buffer).getUint32(TERMIOS_OFFSETS.c_lflag, true);
  return (lflag & TERMIOS.ICANON) !== 0 && (lflag & TERMIOS.ECHO) !== 0;
}

/** Starts tests/testdata/raw_terminal.ts on a fresh pty; resolves once it is in raw mode. */
async function rawTerminalProcess(denoFlags: string[] = []) {
  const p = openPty();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-check",
      "--allow-ffi",
      ...denoFlags,
      `${repo}tests/testdata/raw_terminal.ts`,
      p.path,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  assert.equal(new TextDecoder().decode(value).trim(), "raw");
  assert.equal(cooked(p.slave), false, "raw mode is on");
  reader.releaseLock();
  const close = () => {
    libc.close(p.slave);
    libc.close(p.master);
  };
  return { child, slave: p.slave, close };
}

const FATAL: Deno.Signal[] = [
  "SIGQUIT",
  "SIGTRAP",
  "SIGABRT",
  "SIGALRM",
  "SIGSTKFLT",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
];
const GRACEFUL: [Deno.Signal, number][] = [["SIGHUP", 1], ["SIGINT", 2], ["SIGTERM", 15]];

Deno.test("every signal that ends the process restores the terminal first", async () => {
  const failures: string[] = [];
  for (const sig of FATAL) {
    const p = await rawTerminalProcess();
    try {
      p.child.kill(sig);
      const st = await p.child.status;
      await p.child.stdout.cancel();
      const err = new TextDecoder().decode(await new Response(p.child.stderr).arrayBuffer());
      // It dies of the same signal, as a parent expects.
      if (st.signal !== sig) failures.push(`${sig}: ended with ${st.signal ?? st.code} ${err}`);
      if (!cooked(p.slave)) failures.push(`${sig}: terminal left raw`);
    } finally {
      p.close();
    }
  }
  for (const [sig, no] of GRACEFUL) {
    const p = await rawTerminalProcess();
    try {
      p.child.kill(sig);
      const st = await p.child.status;
      await p.child.stdout.cancel();
      await p.child.stderr.cancel();
      if (st.code !== 128 + no || st.signal) {
        failures.push(`${sig}: exit ${st.code} signal ${st.signal}`);
      }
      if (!cooked(p.slave)) failures.push(`${sig}: terminal left raw`);
    } finally {
      p.close();
    }
  }
  assert.deepEqual(failures, []);
});

Deno.test("under deno run --cpu-prof, V8's SIGPROF samples do not end it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-cpu-prof-" });
  const p = await rawTerminalProcess(["--cpu-prof", `--cpu-prof-dir=${dir}`]);
  try {
    // The profiler samples about every millisecond, each sample a SIGPROF.
    await new Promise((r) => setTimeout(r, 500));
    p.child.kill("SIGTERM");
    const st = await p.child.status;
    await p.child.stdout.cancel();
    await p.child.stderr.cancel();
    assert.equal(st.signal, null, "not ended by a signal");
    assert.equal(st.code, 143, "the clean end SIGTERM asks for");
    assert.ok(cooked(p.slave), "terminal restored");
  } finally {
    p.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGPIPE and real-time signals do not end it; the terminal stays its own", async () => {
  const p = await rawTerminalProcess();
  try {
    p.child.kill("SIGPIPE");
    // Real-time signals have no Deno name: send SIGRTMIN+3 (37) with kill(2).
    assert.equal(
      Number(libc.syscall(62n, BigInt(p.child.pid), 37n, 0n, 0n, 0n, 0n)),
      0,
      "kill(pid, 37)",
    );
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(cooked(p.slave), false, "still running, still raw");
    p.child.kill("SIGTERM");
    const st = await p.child.status;
    await p.child.stdout.cancel();
    await p.child.stderr.cancel();
    assert.equal(st.code, 143);
    assert.ok(cooked(p.slave), "restored on SIGTERM");
  } finally {
    p.close();
  }
});

Deno.test("with no terminal and no VM, SIGTERM ends even a blocked main thread", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-check", "--allow-ffi", `${repo}tests/testdata/blocked_main.ts`],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  assert.equal(new TextDecoder().decode((await reader.read()).value).trim(), "blocked");
  reader.releaseLock();
  child.kill("SIGTERM");
  // A JS listener could not run on the blocked thread; the default action must.
  const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
  const st = await child.status;
  clearTimeout(killer);
  await child.stdout.cancel();
  assert.equal(st.signal, "SIGTERM");
});

function seccompLocked(pid: number): boolean {
  try {
    return /Seccomp:\s+2/.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

/** Listening TCP sockets held by pid (by inode). */
function listening(pid: number): number {
  const inodes = new Set<string>();
  try {
    for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        const m = Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`).match(/^socket:\[(\d+)\]$/);
        if (m) inodes.add(m[1]);
      } catch { /* closed meanwhile */ }
    }
  } catch {
    return 0;
  }
  let n = 0;
  for (const f of ["tcp", "tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(`/proc/${pid}/net/${f}`);
    } catch {
      continue; // the process is gone
    }
    for (const line of text.trim().split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === "0A" && inodes.has(cols[9])) n++;
    }
  }
  return n;
}

function probe(args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-check", "--allow-ffi", `${repo}tests/testdata/inspector_probe.ts`, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Starts the probe, waits for its lock, then sends SIGUSR1 every 5 ms until it exits. */
async function spamAfterLock(mode: string) {
  const t0 = performance.now();
  const child = probe([mode, "1500"]);
  while (!seccompLocked(child.pid) && performance.now() - t0 < 10_000) {
    await new Promise((r) => setTimeout(r, 1));
  }
  const lockedMs = performance.now() - t0;
  let sent = 0;
  let sockets = 0;
  let firstMs = 0, lastMs = 0;
  // Every 5 ms: while the rest of the program loads, past Deno's 500 ms grace
  // period, and while the process ends.
  const spam = setInterval(() => {
    try {
      Deno.kill(child.pid, "SIGUSR1");
      lastMs = performance.now();
      if (sent++ === 0) firstMs = lastMs;
    } catch { /* exited */ }
    sockets += listening(child.pid);
  }, 5);
  const out = await child.output();
  clearInterval(spam);
  const stderr = new TextDecoder().decode(out.stderr);
  console.log(
    `${mode}: lock seen ${lockedMs.toFixed(0)} ms after spawn; ${sent} SIGUSR1 sent; ` +
      stderr.match(/lock at .*/)?.[0],
  );
  // The signals covered the probe's second and a half after its lock, densely:
  // a loaded host stretches the 5 ms interval (15 ms seen), never to 50 ms.
  const spanMs = lastMs - firstMs;
  assert.ok(spanMs > 1000 && sent > spanMs / 50, `${sent} signals in ${spanMs.toFixed(0)} ms`);
  assert.equal(out.code, 0, stderr);
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "alive");
  assert.equal(sockets, 0);
  assert.doesNotMatch(stderr, /Debugger/i);
  return stderr;
}

Deno.test("SIGUSR1 from the lock to exit never opens the inspector", async () => {
  const stderr = await spamAfterLock("locked");
  assert.equal(stderr.match(/^image$/gm)?.length, 1, stderr);
  assert.match(stderr, /"raced":false,"locked":true/);
});

Deno.test("a lock after Deno's grace period re-executes into a locked image", async () => {
  const stderr = await spamAfterLock("late");
  // The first image found Deno's handler in place and re-executed itself;
  // the second started with SIGUSR1 ignored and the filter inherited.
  assert.equal(stderr.match(/^image$/gm)?.length, 2, stderr);
  assert.match(stderr, /"ignored":true,"raced":false,"locked":true/);
});

Deno.test("control: without the lock, one SIGUSR1 opens the inspector", async () => {
  const child = probe(["unlocked", "5000"]);
  await new Promise((r) => setTimeout(r, 1200)); // past Deno's 500 ms grace period
  child.kill("SIGUSR1");
  let sockets = 0;
  for (let i = 0; i < 300 && sockets === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
    sockets = listening(child.pid);
  }
  child.kill("SIGKILL");
  const out = await child.output();
  assert.match(new TextDecoder().decode(out.stderr), /Debugger listening on ws:\/\/127\.0\.0\.1/);
  assert.ok(sockets > 0, "a listening socket appeared");
});
