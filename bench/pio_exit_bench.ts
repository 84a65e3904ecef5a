/**
 * PIO exit round trip: the same long-mode guest (`out` to an unclaimed port
 * n times) run by a vCPU Worker of this VMM and by a minimal C VMM the bench
 * builds with cc, in the same run, as a ratio (target <= 1.05x); and the
 * vCPU Worker with its per-exit statistics (exits counted by reason) on and
 * off, interleaved in the same run (target: within 2%).
 *
 * Runs on this host's /dev/kvm when it opens (PVM hosts included: the guest
 * is 64-bit, which PVM runs faithfully; the table says which), otherwise
 * inside the nested KVM host.
 *
 * @module
 */
import { Machine, setRealModeEntry } from "../machine/machine.ts";
import { PIO_LOOP_EXIT_CODE, PIO_LOOP_PORT, pioLoop } from "../guests/pio_loop.ts";
import { GUEST_MIN_RAM } from "../guests/guest.ts";
import { VM_STATS_OFF } from "../vcpu/vm_control.ts";
import { runNested } from "../tests/nested/run_nested.ts";

const N = Number(Deno.env.get("DENOVMM_PIO_EXITS") ?? 200_000);
const ROUNDS = Number(Deno.env.get("DENOVMM_PIO_ROUNDS") ?? 3);
const here = new URL(".", import.meta.url).pathname;

function kvmKind(): string | undefined {
  try {
    Deno.openSync("/dev/kvm", { read: true, write: true }).close();
  } catch {
    return undefined;
  }
  const exists = (p: string) => {
    try {
      Deno.statSync(p);
      return true;
    } catch {
      return false;
    }
  };
  if (Deno.env.get("DENOVMM_NESTED") === "1") return "nested KVM (kvm_amd inside QEMU TCG)";
  if (exists("/sys/module/kvm_pvm")) return "PVM /dev/kvm";
  if (exists("/sys/module/kvm_intel")) return "hardware KVM (kvm_intel)";
  if (exists("/sys/module/kvm_amd")) return "hardware KVM (kvm_amd)";
  return "KVM";
}

// The C baseline is built here, statically, so it also runs inside the nested host.
let exe: string = Deno.env.get("DENOVMM_PIO_EXE") ?? "";
if (!exe) {
  const cacheDir = new URL("../.cache/bench/", import.meta.url).pathname;
  await Deno.mkdir(cacheDir, { recursive: true });
  exe = `${cacheDir}pio_exit`;
  const cc = await new Deno.Command("cc", {
    args: ["-O2", "-static", "-o", exe, `${here}pio_exit.c`],
  }).output();
  if (cc.code !== 0) throw new Error(new TextDecoder().decode(cc.stderr));
}

if (!kvmKind()) {
  console.log("No /dev/kvm here: running this benchmark inside the nested KVM host.");
  const r = await runNested(
    `DENOVMM_PIO_EXITS=${N} DENOVMM_PIO_ROUNDS=${ROUNDS} DENOVMM_PIO_EXE=${exe} deno run --no-check -A bench/pio_exit_bench.ts`,
    { stream: true },
  );
  Deno.exit(r.code);
}

const guest = pioLoop(N);
const tmp = await Deno.makeTempDir({ prefix: "denovmm-pio-" });
const bin = `${tmp}/guest.bin`;
await Deno.writeFile(bin, guest.code);

async function runC(): Promise<number> {
  const out = await new Deno.Command(exe, {
    args: [bin, String(guest.entry), String(PIO_LOOP_PORT)],
  }).output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  const [exits, ns] = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
  if (exits !== N) throw new Error(`C VMM saw ${exits} exits, expected ${N}`);
  return ns / exits;
}

async function runDeno(statsOff = false): Promise<number> {
  const m = Machine.create({
    memoryBytes: Math.max(GUEST_MIN_RAM, 1 << 20),
    cpus: 1,
    devices: [{
      module: new URL("../tests/kvm/test_devices.ts", import.meta.url).href,
      factory: "testDevices",
      args: { echo: new SharedArrayBuffer(4), debugExit: true },
    }],
  });
  m.memory.write(guest.loadAddr, guest.code);
  // vCPU threads read the switch once, when they start (in setup).
  if (statsOff) Atomics.store(m.control.words, VM_STATS_OFF, 1);
  await m.setup((v, i) => setRealModeEntry(v, i, guest.entry));
  const t0 = performance.now();
  const exit = await m.run();
  const ms = performance.now() - t0;
  await m.close();
  if (exit.errors.length) throw new Error(exit.errors.join("; "));
  if (exit.exitCode !== PIO_LOOP_EXIT_CODE) {
    throw new Error(`The guest did not finish its loop (exit code ${exit.exitCode})`);
  }
  return (ms * 1e6) / N;
}

const c: number[] = [], d: number[] = [], off: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  c.push(await runC());
  d.push(await runDeno());
  off.push(await runDeno(true));
}
await Deno.remove(tmp, { recursive: true });
const best = (xs: number[]) => Math.min(...xs);
const us = (ns: number) => (ns / 1000).toFixed(2);
console.log(`KVM: ${kvmKind()}; ${N} exits per run, best of ${ROUNDS}\n`);
console.log("| VMM | µs per PIO exit (best) | all runs (µs) | ratio vs C |");
console.log("|---|---|---|---|");
console.log(`| C (cc -O2, KVM_RUN loop) | ${us(best(c))} | ${c.map(us).join(", ")} | 1.00x |`);
console.log(
  `| denovmm vCPU Worker | ${us(best(d))} | ${d.map(us).join(", ")} | ${
    (best(d) / best(c)).toFixed(2)
  }x |`,
);
console.log(
  `| denovmm, exit statistics off | ${us(best(off))} | ${off.map(us).join(", ")} | ${
    (best(off) / best(c)).toFixed(2)
  }x |`,
);
const cost = (best(d) / best(off) - 1) * 100;
console.log(
  `\nStatistics cost: ${
    cost.toFixed(1)
  }% per exit (on vs off, best of ${ROUNDS}; target within 2%).`,
);
console.log("Target: <= 1.05x. Each Deno run includes starting and stopping the vCPU loop.");
