// How the VMM process lives and ends, on KVM, run as users run it
// (`deno run --allow-ffi main.ts`):
// - --reboot: 50 resets of a guest that dirties 28 of its 32 MiB keep the
//   process's RSS, fds and mappings flat (each reset releases guest RAM, the
//   VM and vCPU fds and the kvm_run mappings);
// - SIGUSR1, sent every few ms from the moment the lock is in place through
//   start-up, resets and shutdown, never opens Deno's inspector: no listening
//   socket, and the VM keeps running;
// - SIGTERM ends it cleanly with exit status 143;
// - a vCPU thread that fails reports why, every time (exit 2 explains itself);
// - five runs with a disk on an I/O thread (its aio Workers load as served
//   modules under --allow-ffi) write nothing new under DENO_DIR after the first.
import assert from "node:assert/strict";
import { resetLoopGuest } from "../../guests/reset_loop.ts";
import { buildGuest } from "../../guests/guest.ts";
import { Machine, setRealModeEntry } from "../../machine/machine.ts";
import { EXIT_CODE_CRASH } from "../../vcpu/exit_codes.ts";
import { THROWING_MESSAGE, THROWING_PORT } from "./testdata/throwing_device.ts";
import { runVmm, startVmm } from "./_vmm_process.ts";

const MEMORY = 32 << 20;

interface Sample {
  rssKiB: number;
  fds: number;
  maps: number;
}

function sample(pid: number): Sample {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rssKiB = Number(status.match(/VmRSS:\s+(\d+)/)?.[1]);
  let fds = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) fds++;
  const maps = Deno.readTextFileSync(`/proc/${pid}/maps`).trim().split("\n").length;
  return { rssKiB, fds, maps };
}

/** The median of 9 samples 40 ms apart (a boot of the reset-loop guest takes ~1 s here). */
async function steadySample(pid: number): Promise<Sample> {
  const looks: Sample[] = [];
  for (let i = 0; i < 9; i++) {
    looks.push(sample(pid));
    await new Promise((r) => setTimeout(r, 40));
  }
  const median = (k: keyof Sample) => looks.map((s) => s[k]).sort((a, b) => a - b)[4];
  return { rssKiB: median("rssKiB"), fds: median("fds"), maps: median("maps") };
}

/** Inodes of the listening TCP sockets that `pid` holds. */
function listeningSockets(pid: number): string[] {
  const inodes = new Set<string>();
  try {
    for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        const m = Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`).match(/^socket:\[(\d+)\]$/);
        if (m) inodes.add(m[1]);
      } catch { /* closed meanwhile */ }
    }
  } catch {
    return []; // the process is gone
  }
  const out: string[] = [];
  for (const f of ["tcp", "tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(`/proc/${pid}/net/${f}`);
    } catch {
      continue;
    }
    for (const line of text.trim().split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === "0A" && inodes.has(cols[9])) out.push(`${f} ${cols[1]}`);
    }
  }
  return out;
}

function seccompLocked(pid: number): boolean {
  try {
    return /Seccomp:\s+2/.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

Deno.test("--reboot x50 keeps RSS, fds and maps flat; SIGUSR1 opens nothing; SIGTERM exits 143", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-process-" });
  try {
    const kernel = `${dir}/reset_loop.elf`;
    await Deno.writeFile(kernel, resetLoopGuest(MEMORY));
    const t0 = performance.now();
    let boots = 0;
    const samples: Sample[] = [];
    const vmm = startVmm(["--kernel", kernel, "--memory", "32M", "--reboot"], {
      timeoutMs: 600_000,
      onStdout: async (stdout) => {
        const n = stdout.split("R\n").length - 1;
        if (n <= boots) return;
        boots = n;
        if (boots % 10 === 0) {
          console.log(`boot ${boots} at ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        }
        // "R" comes just before the reset: the machine is being rebuilt, so a
        // single look may see two machines' fds or none. The median of several
        // looks across the next boot is the steady state.
        // (While sampling, boots go on: the count may jump past 10 or 50.)
        const due = samples.length === 0 ? 10 : 50;
        if (boots >= due && samples.length < 2) {
          samples.push(await steadySample(pid));
          // SIGUSR1 keeps coming during shutdown.
          if (samples.length === 2) Deno.kill(pid, "SIGTERM");
        }
      },
    });
    const pid = vmm.child.pid;
    // The lock goes in before the rest of the program loads.
    while (!seccompLocked(pid) && performance.now() - t0 < 30_000) {
      await new Promise((r) => setTimeout(r, 1));
    }
    const lockedAfterMs = performance.now() - t0;
    assert.ok(seccompLocked(pid), "SIGUSR1 lock in place");
    // From now on: SIGUSR1 every 10 ms, and a look for listening sockets
    // every 50 ms (more would starve an emulated host).
    let usr1 = 0;
    const listening = new Set<string>();
    const spam = setInterval(() => {
      try {
        Deno.kill(pid, "SIGUSR1");
        usr1++;
      } catch { /* exited */ }
      if (usr1 % 5 === 0) { for (const s of listeningSockets(pid)) listening.add(s); }
    }, 10);
    const st = await vmm.done;
    const stderr = st.stderr;
    clearInterval(spam);
    const [at10, at50] = samples;
    console.log(
      `lock after ${lockedAfterMs.toFixed(0)} ms; ${boots} boots; ${usr1} SIGUSR1; ` +
        `at boot 10: ${JSON.stringify(at10)}; at boot 50: ${JSON.stringify(at50)}`,
    );
    assert.equal(listening.size, 0, `listening: ${[...listening]}`);
    assert.doesNotMatch(stderr, /Debugger|inspect/i, stderr);
    assert.ok(boots >= 50, `${boots} boots\n${stderr}`);
    assert.equal(st.signal, null, stderr);
    assert.equal(st.code, 143, stderr);
    // Leaking each machine would add 28 MiB of RSS, 2 fds and 2 maps per reset.
    assert.ok(at50.rssKiB - at10.rssKiB < 48 * 1024, `RSS ${at10.rssKiB} -> ${at50.rssKiB} KiB`);
    assert.ok(at50.fds - at10.fds <= 3, `fds ${at10.fds} -> ${at50.fds}`);
    assert.ok(at50.maps - at10.maps <= 20, `maps ${at10.maps} -> ${at50.maps}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a vCPU thread that fails always reports why (6 runs)", async () => {
  // Real mode: write to the throwing device's port.
  const guest = buildGuest(`
bits 16
start:
    mov dx, ${THROWING_PORT}
    mov al, 1
    out dx, al
    hlt
`);
  for (let i = 0; i < 6; i++) {
    const m = Machine.create({
      memoryBytes: 2 << 20,
      cpus: 1,
      devices: [{
        module: new URL("./testdata/throwing_device.ts", import.meta.url).href,
        factory: "throwingDevice",
        args: {},
      }],
    });
    try {
      m.memory.write(guest.loadAddr, guest.code);
      await m.setup((v, idx) => setRealModeEntry(v, idx, guest.entry));
      const exit = await m.run();
      assert.equal(exit.exitCode, EXIT_CODE_CRASH, `run ${i}`);
      assert.equal(exit.errors.length, 1, `run ${i}: ${exit.errors}`);
      assert.match(exit.errors[0], new RegExp(`vcpu-0: .*${THROWING_MESSAGE}`), `run ${i}`);
    } finally {
      m.close();
    }
  }
});

Deno.test("five runs with --disk x,iothread=0 under --allow-ffi add no files to DENO_DIR", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-denodir-" });
  try {
    const kernel = `${dir}/reset_loop.elf`;
    await Deno.writeFile(kernel, resetLoopGuest(MEMORY));
    const image = `${dir}/disk.img`;
    await Deno.writeFile(image, new Uint8Array(1 << 20));
    const denoDir = `${dir}/deno_dir`;
    const count = () => {
      let n = 0;
      const walk = (d: string) => {
        for (const e of Deno.readDirSync(d)) {
          if (e.isDirectory) walk(`${d}/${e.name}`);
          else if (!/-(wal|shm|journal)$/.test(e.name)) n++;
        }
      };
      walk(denoDir);
      return n;
    };
    const counts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const out = await runVmm(
        ["--kernel", kernel, "--memory", "32M", "--disk", `${image},iothread=0`, "--no-reboot"],
        { env: { DENO_DIR: denoDir } },
      );
      // The guest resets once; with --no-reboot that ends the run with 10.
      assert.equal(out.code, 10, out.stderr);
      assert.equal(out.stdout, "R\n");
      counts.push(count());
    }
    console.log(`files under DENO_DIR after each run: ${counts}`);
    assert.deepEqual(counts.slice(1), [counts[0], counts[0], counts[0], counts[0]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
