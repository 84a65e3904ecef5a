/**
 * The `vnc-worker` thread: runs the encoding job (encoder_core.ts) over the
 * shared framebuffer and posts finished updates back to the main thread,
 * transferring each buffer (no copy). It looks for changes every refresh
 * period while some client waits, and at once for a full-screen request.
 *
 * @module
 */
import { EncoderCore } from "./encoder_core.ts";
import { viewOf } from "./encoder.ts";
import { setScheduler, setThreadName } from "../../sys/thread.ts";
import { zlibAvailable } from "../../sys/zlib.ts";

/** SCHED_BATCH: a CPU-bound thread that does not preempt interactive ones on wake-up. */
const SCHED_BATCH = 3;

// deno-lint-ignore no-explicit-any
const port = self as any;
let core: EncoderCore | null = null;
const ids = new Set<number>();
let refreshMs = 30;
/** The current period: doubles while nothing changes (up to 8x), back to refreshMs on a change (QEMU backs off too). */
let periodMs = 30;
let timer: ReturnType<typeof setTimeout> | undefined;

function flush(): void {
  if (!core) return;
  const { changedTiles, resized } = core.refresh();
  periodMs = changedTiles > 0 || resized ? refreshMs : Math.min(periodMs * 2, refreshMs * 8);
  for (const id of ids) {
    const u = core.takeUpdate(id);
    if (u) {
      // The writer's buffer is this update's own: hand it over, no copy.
      port.postMessage({ t: "update", id, buf: u.buffer, len: u.length }, [u.buffer]);
    }
  }
}

function tick(): void {
  timer = undefined;
  try {
    if (core?.waiting) flush();
  } catch (e) {
    port.postMessage({ t: "error", message: (e as Error).message });
  }
  arm();
}

function arm(): void {
  if (timer === undefined && core?.waiting) timer = setTimeout(tick, periodMs);
}

port.onmessage = (e: MessageEvent) => {
  const m = e.data;
  try {
    switch (m.t) {
      case "init":
        // Encoding is throughput work: let the main loop and vCPUs win the
        // CPU. Naming the thread comes after, so the placement and priority
        // a user gives the vnc-worker role (applied with the name) win.
        setScheduler(SCHED_BATCH, 0);
        setThreadName("vnc-worker");
        refreshMs = periodMs = m.refreshMs;
        core = new EncoderCore(viewOf(m.fb));
        if (!zlibAvailable()) {
          port.postMessage({ t: "log", message: "libz.so.1 not found: no ZRLE, clients get Raw" });
        }
        port.postMessage({ t: "ready" });
        return;
      case "fb":
        core!.setView(m.fb ? viewOf(m.fb) : null);
        port.postMessage({ t: "fb-done", seq: m.seq });
        arm();
        return;
      case "add":
        ids.add(m.id);
        core!.addClient(m.id);
        return;
      case "remove":
        ids.delete(m.id);
        core!.removeClient(m.id);
        return;
      case "format":
        core!.setPixelFormat(m.id, m.pf);
        return;
      case "encodings":
        core!.setEncodings(m.id, m.list);
        return;
      case "request":
        core!.request(m.id, m.incremental, m.r);
        periodMs = refreshMs; // a client acted: look again soon
        // A full-screen request is answered without waiting for the refresh period.
        if (!m.incremental) {
          clearTimeout(timer);
          timer = setTimeout(tick, 0);
        } else arm();
        return;
      case "stop":
        clearTimeout(timer);
        timer = undefined;
        core?.close();
        core = null;
        port.postMessage({ t: "closed" });
        self.close();
        return;
    }
  } catch (err) {
    port.postMessage({ t: "error", message: (err as Error).message });
  }
};
