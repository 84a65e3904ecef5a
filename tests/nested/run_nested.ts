/**
 * Runs a shell command inside the nested KVM host: a Debian kernel booted by
 * QEMU's software emulator (`-accel tcg -cpu max`, which offers AMD SVM), where
 * kvm_amd provides a real /dev/kvm. The repository is shared over 9p at the
 * same absolute path, so paths in the command work unchanged.
 *
 * Channels out of the L1: the command's stdout and stderr travel over two
 * virtio-serial ports to unix sockets of this process (streamed as they come);
 * the exit status, KVM state and timings come back as files on a per-run 9p
 * share (QEMU's exit status does not carry them); the L1 console goes to a log
 * file whose tail is quoted when something fails.
 *
 * @module
 */

import { dirname } from "node:path";
import { debianKernel, ensureAptPackages, REPO_ROOT } from "../fixtures/debian.ts";
import { vmlinuxOf } from "../fixtures/vmlinux.ts";
import { buildL1Initramfs, L1_RUN_DIR, L1_RUN_TAG } from "./l1_image.ts";

/** Options for {@linkcode runNested}. */
export interface NestedOptions {
  /** Kill QEMU and fail after this many seconds in all (default 600). */
  timeoutS?: number;
  /** Fail when the command has not started this many seconds after QEMU did (default 120). */
  bootTimeoutS?: number;
  /**
   * Kill QEMU and fail when the started command has printed nothing for this
   * many seconds (default: no limit). A hung nested host (its kernel stuck)
   * is told apart from a slow one this way, long before `timeoutS`.
   */
  idleTimeoutS?: number;
  /** L1 vCPUs (default 2). */
  cpus?: number;
  /** L1 memory (default 4096). */
  memoryMiB?: number;
  /** Extra environment for the command. */
  env?: Record<string, string>;
  /**
   * QEMU's TCG threading: "multi" (a host thread per L1 CPU, the default) or
   * "single" (all L1 CPUs on one host thread, in turn). The environment
   * variable DENOVMM_NESTED_TCG sets the default.
   */
  tcgThreads?: "multi" | "single";
  /** QEMU `-cpu` model (default "max", which offers SVM); for tests of the failure path. */
  cpu?: string;
  /** Aborting it kills QEMU and makes runNested throw (e.g. on SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Copy the command's stdout/stderr to this process's as they arrive (default false). */
  stream?: boolean;
  /** Called with the command's output, decoded, as it arrives (stdout and stderr). */
  onOutput?: (text: string) => void;
  /**
   * Put the host's QEMU (binary, libraries, firmware) in the L1 at the same
   * paths, for baselines that run `qemu-system-x86_64 -enable-kvm` inside (default false).
   */
  qemu?: boolean;
}

/** How a nested command ended. */
export interface NestedResult {
  /** The command's exit status inside the L1. */
  code: number;
  /** Its stdout and stderr, interleaved in arrival order. */
  output: string;
  /** L1 uptime when the command started: the nested host's boot cost, in seconds. */
  bootS: number;
  /** Seconds the command ran, by the L1's clock. */
  commandS: number;
  /** Seconds from QEMU start to QEMU exit, by this host's clock. */
  totalS: number;
}

/** A nested run that could not produce the command's exit status. */
export class NestedHostError extends Error {
  /** Last lines of the L1 console, for diagnosis. */
  consoleTail: string;
  /** What the command printed before the host failed (stdout and stderr interleaved). */
  output: string;
  /** Whether the command had started inside the host (so `output` is its partial output). */
  started: boolean;
  constructor(message: string, consoleTail: string, output = "", started = false) {
    super(consoleTail ? `${message}\n--- L1 console (tail) ---\n${consoleTail}` : message);
    this.name = "NestedHostError";
    this.consoleTail = consoleTail;
    this.output = output;
    this.started = started;
  }
}

/**
 * Quotes `s` as one POSIX shell word.
 *
 * @example
 * ```ts
 * import { shellQuote } from "./run_nested.ts";
 * shellQuote("it's"); // "'it'\\''s'"
 * ```
 */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The L1 kernel command line (quiet: the console is only read on failure). */
export const L1_CMDLINE =
  "console=ttyS0 panic=-1 rdinit=/init quiet loglevel=1 tsc=reliable nokaslr";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The per-run script `/init` executes: mounts, environment, the command, its status. */
function runScript(
  command: string,
  shares: { tag: string; path: string }[],
  env: Record<string, string>,
): string {
  const q = shellQuote;
  const lines = ["#!/bin/sh", `R=${L1_RUN_DIR}`];
  for (const s of shares) {
    lines.push(
      `mkdir -p ${q(s.path)}`,
      `mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose ${s.tag} ${
        q(s.path)
      }` +
        ` || { echo "mount of ${s.tag} failed" > $R/error; exit 1; }`,
    );
  }
  lines.push(
    "OUT=; ERR=",
    "for p in /sys/class/virtio-ports/*; do",
    '  case "$(cat $p/name)" in',
    "    denovmm.stdout) OUT=/dev/${p##*/} ;;",
    "    denovmm.stderr) ERR=/dev/${p##*/} ;;",
    "  esac",
    "done",
    'if [ -z "$OUT" ] || [ -z "$ERR" ]; then echo "virtio-serial ports missing" > $R/error; exit 1; fi',
  );
  for (const [k, v] of Object.entries(env)) lines.push(`export ${k}=${q(v)}`);
  lines.push(
    'mkdir -p "$DENO_DIR" "$HOME"',
    // A test machine has loopback up; busybox's /init leaves it down, and
    // servers the tests start (VNC, QMP peers) bind 127.0.0.1.
    "ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up",
    `cd ${q(REPO_ROOT)} || { echo "cannot cd to repository" > $R/error; exit 1; }`,
    "cut -d' ' -f1 /proc/uptime > $R/started",
    `/bin/sh -c ${q(command)} < /dev/null > "$OUT" 2> "$ERR"`,
    "echo $? > $R/exit.tmp",
    "cut -d' ' -f1 /proc/uptime > $R/finished",
    "mv $R/exit.tmp $R/exit",
    "sync",
  );
  return lines.join("\n") + "\n";
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

async function consoleTail(path: string, lines = 100): Promise<string> {
  const text = (await readOptional(path)) ?? "";
  // Drop terminal escape sequences the firmware prints.
  // deno-lint-ignore no-control-regex
  const clean = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replaceAll("\r", "");
  return clean.split("\n").slice(-lines).join("\n");
}

/** Accepts one connection on `listener` and copies it to `sink` until EOF. */
async function pump(listener: Deno.Listener, sink: (chunk: Uint8Array) => void): Promise<void> {
  let conn: Deno.Conn;
  try {
    conn = await listener.accept();
  } catch {
    return; // QEMU never connected; the listener was closed.
  }
  try {
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      sink(buf.slice(0, n));
    }
  } catch {
    // Connection reset when QEMU is killed: keep what arrived.
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

/** One `info registers -a` from QEMU's monitor: each L1 CPU's RIP and CPL. */
async function cpuSnapshot(monitorPath: string): Promise<string[]> {
  const conn = await Deno.connect({ transport: "unix", path: monitorPath });
  let text = "";
  try {
    await conn.write(new TextEncoder().encode("info registers -a\n"));
    const buf = new Uint8Array(64 * 1024);
    const dec = new TextDecoder();
    const end = performance.now() + 3000;
    while (performance.now() < end) {
      const n = await Promise.race([
        conn.read(buf),
        new Promise<null>((r) => setTimeout(() => r(null), 500)),
      ]);
      if (n === null) {
        if (/CPU#\d[\s\S]*RIP=/.test(text)) break;
        continue;
      }
      text += dec.decode(buf.subarray(0, n), { stream: true });
    }
  } finally {
    conn.close();
  }
  const cpl = [...text.matchAll(/CPL=(\d)/g)].map((m) => m[1]);
  return [...text.matchAll(/RIP=([0-9a-f]{16})/g)].map((m, i) => `${m[1]}/CPL${cpl[i] ?? "?"}`);
}

/**
 * Where the hung L1's CPUs are, twice a second apart (the L1 boots with
 * nokaslr, so the addresses name the same code each run: look them up in the
 * L1's /proc/kallsyms).
 */
async function hangReport(monitorPath: string): Promise<string> {
  try {
    const first = await cpuSnapshot(monitorPath);
    await new Promise((r) => setTimeout(r, 1000));
    const second = await cpuSnapshot(monitorPath);
    return first.map((rip, i) => `L1 CPU ${i}: RIP ${rip} then ${second[i] ?? "?"}`).join("\n");
  } catch (e) {
    return `(no monitor: ${e instanceof Error ? e.message : e})`;
  }
}

function checkRange(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Invalid ${name}: ${value} (expected ${min}..${max})`);
  }
  return value;
}

/** The L1's kernel and initramfs, made once per process (hosts started at once share it). */
const prepared = new Map<boolean, Promise<{ kernelImage: string; deno: string; initrd: string }>>();

function prepareL1(qemu: boolean): Promise<{ kernelImage: string; deno: string; initrd: string }> {
  let p = prepared.get(qemu);
  if (p === undefined) {
    p = (async () => {
      await ensureAptPackages(["qemu-system-x86", "xz-utils"]);
      const kernel = await debianKernel("amd64");
      // PVH boot of the plain ELF saves the emulated xz decompression (~3-5 s).
      const kernelImage = await vmlinuxOf(kernel.vmlinuz).catch(() => kernel.vmlinuz);
      const deno = await Deno.realPath(Deno.execPath());
      const initrd = await buildL1Initramfs(kernel, deno, { qemu });
      return { kernelImage, deno, initrd };
    })();
    // A failure is not kept: the next host tries again.
    p.catch(() => prepared.delete(qemu));
    prepared.set(qemu, p);
  }
  return p;
}

/**
 * Runs `command` with `sh -c` in the repository root inside the nested KVM host
 * and returns its exit status and output. Inside, PATH starts with
 * `<repo>/node_modules/.bin` and the running Deno's directory; DENO_DIR and
 * HOME are on tmpfs; NO_COLOR=1 and DENOVMM_NESTED=1 are set. Run Deno inside
 * with `--no-check` (type-checking under the emulator is very slow).
 *
 * Throws {@linkcode NestedHostError} (quoting the L1 console) when the L1 does
 * not boot, /dev/kvm does not appear, or the time limit is hit; QEMU is killed
 * in every case.
 *
 * @example
 * ```ts ignore
 * const { code, output } = await runNested("deno eval 'console.log(1)'", { timeoutS: 120 });
 * ```
 */
export async function runNested(command: string, opts: NestedOptions = {}): Promise<NestedResult> {
  const cpus = checkRange("cpus", opts.cpus ?? 2, 1, 64);
  const memoryMiB = checkRange("memoryMiB", opts.memoryMiB ?? 4096, 256, 1 << 20);
  const timeoutS = opts.timeoutS ?? 600;
  const bootTimeoutS = Math.min(opts.bootTimeoutS ?? 120, timeoutS);
  if (!(timeoutS > 0)) throw new RangeError(`Invalid timeoutS: ${timeoutS}`);
  const idleTimeoutS = opts.idleTimeoutS ?? Infinity;
  const tcgThreads = opts.tcgThreads ?? Deno.env.get("DENOVMM_NESTED_TCG") ?? "multi";
  if (tcgThreads !== "multi" && tcgThreads !== "single") {
    throw new RangeError(`Invalid tcgThreads: ${tcgThreads}`);
  }
  if (!(idleTimeoutS > 0)) throw new RangeError(`Invalid idleTimeoutS: ${idleTimeoutS}`);
  for (const k of Object.keys(opts.env ?? {})) {
    if (!ENV_NAME.test(k)) throw new TypeError(`Invalid environment variable name: ${k}`);
  }

  const { kernelImage, deno, initrd } = await prepareL1(opts.qemu ?? false);

  const shares = [{ tag: "denovmm_repo", path: REPO_ROOT }];
  const denoDir = dirname(deno);
  if (!(denoDir + "/").startsWith(REPO_ROOT + "/")) {
    shares.push({ tag: "denovmm_deno", path: denoDir });
  }
  const env: Record<string, string> = {
    PATH: `${REPO_ROOT}/node_modules/.bin:${denoDir}:/bin`,
    HOME: "/tmp/home",
    DENO_DIR: "/tmp/deno_dir",
    NO_COLOR: "1",
    DENOVMM_NESTED: "1",
    ...opts.env,
  };

  const run = await Deno.makeTempDir({ prefix: "denovmm-nested-" });
  const listeners: Deno.Listener[] = [];
  let child: Deno.ChildProcess | undefined;
  try {
    await Deno.writeTextFile(`${run}/run.sh`, runScript(command, shares, env));
    // One decoder per stream: a UTF-8 sequence may be split across chunks.
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    let output = "";
    let lastOutput = performance.now();
    const sink = (stream: "stdout" | "stderr") => (chunk: Uint8Array) => {
      lastOutput = performance.now();
      const text = decoders[stream].decode(chunk, { stream: true });
      output += text;
      opts.onOutput?.(text);
      if (opts.stream) (stream === "stdout" ? Deno.stdout : Deno.stderr).writeSync(chunk);
    };
    const pumps: Promise<void>[] = [];
    for (const stream of ["stdout", "stderr"] as const) {
      const listener = Deno.listen({ transport: "unix", path: `${run}/${stream}.sock` });
      listeners.push(listener);
      pumps.push(pump(listener, sink(stream)));
    }

    // deno-fmt-ignore
    const args = [
      "-accel", `tcg,thread=${tcgThreads}`,
      "-cpu", opts.cpu ?? "max",
      "-smp", String(cpus),
      "-m", `${memoryMiB}M`,
      "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
      "-serial", `file:${run}/console.log`,
      "-kernel", kernelImage,
      "-initrd", initrd,
      "-append", L1_CMDLINE,
      "-virtfs", `local,path=${run},mount_tag=${L1_RUN_TAG},security_model=none,id=${L1_RUN_TAG}`,
      "-device", "virtio-serial-pci,id=vser0",
      // For a look at the L1's CPUs when it hangs (see hangReport).
      "-monitor", `unix:${run}/monitor.sock,server=on,wait=off`,
    ];
    for (const s of shares) {
      args.push(
        "-virtfs",
        `local,path=${s.path},mount_tag=${s.tag},security_model=none,id=${s.tag}`,
      );
    }
    for (const stream of ["stdout", "stderr"]) {
      args.push(
        "-chardev",
        `socket,id=${stream},path=${run}/${stream}.sock`,
        "-device",
        `virtserialport,bus=vser0.0,chardev=${stream},name=denovmm.${stream}`,
      );
    }

    const t0 = performance.now();
    child = new Deno.Command("qemu-system-x86_64", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const qemuOut = child.output();

    let failure: string | undefined;
    const proc = child;
    const killer = setTimeout(() => {
      failure = `Nested command timed out after ${timeoutS} s`;
      proc.kill("SIGKILL");
    }, timeoutS * 1000);
    const onAbort = () => {
      failure ??= "Nested command aborted";
      proc.kill("SIGKILL");
    };
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    let started = false;
    const bootWatch = setInterval(async () => {
      if (failure) return;
      if (!started && (await readOptional(`${run}/started`)) !== undefined) {
        started = true;
        lastOutput = Math.max(lastOutput, performance.now());
      }
      if (started) {
        if ((performance.now() - lastOutput) / 1000 < idleTimeoutS) return;
        failure = `Nested command printed nothing for ${idleTimeoutS} s (the nested host hung)`;
        failure += `\n${await hangReport(`${run}/monitor.sock`)}`;
        return proc.kill("SIGKILL");
      }
      if ((performance.now() - t0) / 1000 < bootTimeoutS) return;
      const kvm = await readOptional(`${run}/kvm`);
      failure = kvm === "ok"
        ? `Nested command did not start within ${bootTimeoutS} s`
        : `The nested host did not boot within ${bootTimeoutS} s`;
      proc.kill("SIGKILL");
    }, 250);
    let qemu: Deno.CommandOutput;
    try {
      qemu = await qemuOut;
    } finally {
      clearTimeout(killer);
      clearInterval(bootWatch);
      opts.signal?.removeEventListener("abort", onAbort);
    }
    const totalS = (performance.now() - t0) / 1000;
    for (const l of listeners) l.close();
    listeners.length = 0;
    await Promise.all(pumps);
    output += decoders.stdout.decode() + decoders.stderr.decode();

    const tail = async () => {
      const qemuErr = new TextDecoder().decode(qemu.stderr).trim();
      return (await consoleTail(`${run}/console.log`)) +
        (qemuErr ? `\n--- QEMU stderr ---\n${qemuErr}` : "");
    };
    if (failure) throw new NestedHostError(failure, await tail(), output, started);
    const exit = await readOptional(`${run}/exit`);
    if (exit === undefined || !/^\d+$/.test(exit)) {
      const kvm = await readOptional(`${run}/kvm`);
      const error = await readOptional(`${run}/error`);
      const consoleLog = (await readOptional(`${run}/console.log`)) ?? "";
      const l1Error = /DENOVMM-L1 error=(.*)/.exec(consoleLog)?.[1]?.trim();
      const why = error
        ? `The nested host failed to run the command: ${error}`
        : kvm === "missing"
        ? "/dev/kvm did not appear in the nested host (kvm_amd did not load)"
        : l1Error
        ? `The nested host failed: ${l1Error}`
        : kvm === undefined && consoleLog.includes("DENOVMM-L1 init")
        ? `The nested host's /init stopped early (QEMU exit status ${qemu.code})`
        : kvm === undefined
        ? `The nested host's kernel did not reach /init (QEMU exit status ${qemu.code})`
        : "The nested host stopped before the command finished";
      throw new NestedHostError(why, await tail(), output, started);
    }
    const startedAt = Number(await readOptional(`${run}/started`));
    const finished = Number(await readOptional(`${run}/finished`));
    return { code: Number(exit), output, bootS: startedAt, commandS: finished - startedAt, totalS };
  } finally {
    for (const l of listeners) l.close();
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }
    await Deno.remove(run, { recursive: true }).catch(() => {});
  }
}
