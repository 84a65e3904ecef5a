/**
 * VNC benchmark, in one run:
 *
 * 1. Main-loop callback latency while two clients receive continuous
 *    1920x1080 full-screen changes (ZRLE), with the encoder in its
 *    `vnc-worker` thread against the encoder inline on the loop. A 1 ms loop
 *    timer is the probe: latency = callback start - expiry, p50/p99/max.
 *    The painter and the clients run in their own Workers.
 * 2. Frames per second encoded at 1920x1080 with every pixel changed, ZRLE
 *    against Raw (change detection + encoding, one thread, no sockets).
 *
 * The first row runs the same painter and probe with no client connected:
 * the host's own scheduling noise, which bounds what the other rows can show.
 * On a host with fewer cores than busy threads (painter, clients, encoder,
 * loop) the loop waits for a core whatever it does; the row with the loop's
 * thread in SCHED_FIFO 1 (what `--sched main=fifo:1` sets, QEMU users' chrt)
 * shows the loop's own latency when it is not made to wait for one.
 *
 * `deno run -A bench/vnc_bench.ts [--seconds=6]`
 *
 * @module
 */
import { MainLoop } from "../mainloop/main_loop.ts";
import { VncServer } from "../ui/vnc/server.ts";
import { EncoderCore, GEOMETRY_WORDS } from "../ui/vnc/encoder_core.ts";
import { ENCODING_RAW, ENCODING_ZRLE } from "../ui/vnc/encodings.ts";
import { SCHED_FIFO, SCHED_OTHER, setScheduler } from "../sys/thread.ts";

const args = Object.fromEntries(
  Deno.args.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")),
);
const SECONDS = Number(args.seconds ?? 6);
const W = 1920, H = 1080;

function pct(a: number[], p: number): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

function framebuffer() {
  const sab = new SharedArrayBuffer(W * H * 4);
  const geometry = new SharedArrayBuffer(GEOMETRY_WORDS * 4);
  new Int32Array(geometry).set([1, W, H, W * 4]);
  return { sab, geometry };
}

function helper(): Worker {
  return new Worker(new URL("./_vnc_bench_worker.ts", import.meta.url).href, { type: "module" });
}

/** Puts the loop's thread in SCHED_FIFO 1 (`--sched main=fifo:1`); false when not allowed. */
function realtimeLoop(on: boolean): boolean {
  try {
    setScheduler(on ? SCHED_FIFO : SCHED_OTHER, on ? 1 : 0);
    return true;
  } catch {
    return false;
  }
}

async function latencyRun(encoder: "worker" | "inline", clientCount = 2, realtime = false) {
  // The painter, the clients and the encoder are Workers started below: they
  // keep the default policy; only this (the loop's) thread changes.
  if (realtime && !realtimeLoop(true)) return null;
  const fb = framebuffer();
  const loop = new MainLoop({ name: "bench" });
  const running = loop.run();
  const server = await VncServer.start(loop, {
    listen: { host: "127.0.0.1", port: 0 },
    framebuffer: fb,
    encoder,
    log: () => {},
  });
  const stop = new SharedArrayBuffer(4);
  const frames = new SharedArrayBuffer(8);
  const painter = helper(), clients = helper();
  const painted = new Promise((r) => painter.onmessage = r);
  const served = new Promise((r) => clients.onmessage = r);
  painter.postMessage({ t: "paint", fb: fb.sab, w: W, h: H, stop });
  clients.postMessage({
    t: "clients",
    port: server.port,
    n: clientCount,
    encoding: ENCODING_ZRLE,
    stop,
    frames,
  });
  // Probe: a 1 ms timer on the loop.
  const lat: number[] = [];
  const warmupNs = loop.now("host") + 1e9;
  const endNs = loop.now("host") + (SECONDS + 1) * 1e9;
  const done = Promise.withResolvers<void>();
  let expiry = loop.now("host") + 1e6;
  const probe = loop.timer("host", () => {
    const now = loop.now("host");
    if (now > warmupNs) lat.push(now - expiry);
    if (now > endNs) return done.resolve();
    expiry = now + 1e6;
    probe.mod(expiry);
  });
  probe.mod(expiry);
  await done.promise;
  const f = new Int32Array(frames);
  const fps = (f[0] + f[1]) / 2 / (SECONDS + 1);
  const busy = server.busyMs / (SECONDS + 1);
  Atomics.store(new Int32Array(stop), 0, 1);
  await Promise.all([painted, served]);
  painter.terminate();
  clients.terminate();
  await server.close();
  loop.stop();
  await running;
  loop.close();
  if (realtime) realtimeLoop(false);
  return { lat, fps, busy };
}

function encodeFps(encoding: number): { fps: number; bytes: number } {
  const fb = framebuffer();
  const core = new EncoderCore({ memory: fb.sab, geometry: new Int32Array(fb.geometry) });
  core.addClient(1);
  core.setEncodings(1, [encoding]);
  const px = new Uint32Array(fb.sab);
  const scenes = [0, 1].map((s) => {
    const a = new Uint32Array(W * H);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const band = ((y + s * 8) >> 4) & 3;
        a[y * W + x] = band === 0
          ? 0x102030 + s
          : band === 1
          ? ((x + s) % 9 < 3 ? 0xe0e0e0 : 0x000000)
          : band === 2
          ? (((x + s) & 0xff) << 16) | ((y & 0xff) << 8)
          : (x * 2654435761 + y * (s + 1)) >>> 8 & 0xffffff;
      }
    }
    return a;
  });
  let n = 0, bytes = 0, ms = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < SECONDS * 500) {
    px.set(scenes[n & 1]);
    const t = performance.now();
    core.request(1, true, { x: 0, y: 0, w: W, h: H });
    core.refresh();
    bytes += core.takeUpdate(1)?.length ?? 0;
    ms += performance.now() - t;
    n++;
  }
  core.close();
  return { fps: n / (ms / 1000), bytes: bytes / n };
}

const idle = (await latencyRun("worker", 0))!;
const worker = (await latencyRun("worker"))!;
const workerRt = await latencyRun("worker", 2, true);
const inline = (await latencyRun("inline"))!;
const ms = (ns: number) => (ns / 1e6).toFixed(3);
console.log(
  `\nMain-loop callback latency (1 ms probe timer) while 2 clients receive 1920x1080 full-screen changes, ZRLE, ${SECONDS} s each\n`,
);
console.log(
  "| encoder | probes | p50 ms | p99 ms | max ms | client fps | main-thread VNC ms/s | p99 vs inline |",
);
console.log("|---|---|---|---|---|---|---|---|");
const p99i = pct(inline.lat, 99);
const rows = [
  ["no clients (host noise floor)", idle],
  ["vnc-worker thread (ours)", worker],
  ["vnc-worker thread, loop thread `--sched main=fifo:1`", workerRt],
  ["inline on the loop (reference)", inline],
] as const;
for (const [name, r] of rows) {
  if (r === null) {
    console.log(`| ${name} | not run: SCHED_FIFO is not allowed here | | | | | | |`);
    continue;
  }
  console.log(
    `| ${name} | ${r.lat.length} | ${ms(pct(r.lat, 50))} | ${ms(pct(r.lat, 99))} | ${
      ms(Math.max(...r.lat))
    } | ${r.fps.toFixed(1)} | ${r.busy.toFixed(1)} | ${(pct(r.lat, 99) / p99i).toFixed(3)}x |`,
  );
}
const zrle = encodeFps(ENCODING_ZRLE);
const raw = encodeFps(ENCODING_RAW);
console.log(
  `\nEncoding throughput at 1920x1080, every pixel changed each frame (change detection + encode, one thread)\n`,
);
console.log("| encoding | frames/s | bytes/frame | fps vs Raw | bytes vs Raw |");
console.log("|---|---|---|---|---|");
for (const [name, r] of [["ZRLE", zrle], ["Raw (reference)", raw]] as const) {
  console.log(
    `| ${name} | ${r.fps.toFixed(1)} | ${Math.round(r.bytes)} | ${
      (r.fps / raw.fps).toFixed(2)
    }x | ${(r.bytes / raw.bytes).toFixed(3)}x |`,
  );
}
