/**
 * The virtio-blk fuzzer's body (run in a Worker by fuzz_test.ts, which
 * watches its progress counter for hangs). It throws random queue layouts,
 * ring contents, descriptor chains, requests, MSI-X table and register
 * writes at virtio-blk over virtio-pci, and holds the device to three
 * oracles:
 *
 * 1. every time the device breaks, the cause is one of the named virtio
 *    violations (VIRTIO_VIOLATIONS); any other error is a device bug;
 * 2. the device never writes a byte the guest did not offer as writable:
 *    the page that holds request headers is mirrored and compared after
 *    every iteration (nothing the fuzzer offers as writable reaches it);
 * 3. after a reset the device serves a write, a read-back of the same data,
 *    GET_ID and WRITE_ZEROES exactly.
 *
 * @module
 */
import { GuestMemory } from "../../memory/guest_memory.ts";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { type AioBackend, AioQueueFullError } from "../../aio/types.ts";
import { ThreadPool } from "../../aio/thread_pool.ts";
import { IoUring } from "../../aio/io_uring.ts";
import { PCI_COMMAND, PCI_COMMAND_MEMORY, PCI_MSIX_FLAGS } from "../pci/constants.ts";
import { PciBus } from "../pci/pci_bus.ts";
import { blkHeader, CountingSink, forwardingLink, TestDriver } from "./_test_driver.ts";
import { type BlockRequestCounts, VirtioBlock } from "./block.ts";
import {
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_PCI_COMMON_CFG_SIZE,
  VIRTIO_PCI_COMMON_GF,
  VIRTIO_PCI_COMMON_GFSELECT,
  VIRTIO_PCI_COMMON_MSIX,
  VIRTIO_PCI_COMMON_Q_AVAILLO,
  VIRTIO_PCI_COMMON_Q_DESCLO,
  VIRTIO_PCI_COMMON_Q_ENABLE,
  VIRTIO_PCI_COMMON_Q_MSIX,
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_Q_USEDLO,
  VIRTIO_PCI_COMMON_STATUS,
} from "./constants.ts";
import { openDisk, parseDiskOption } from "./disk_file.ts";
import {
  VIRTIO_PCI_BAR,
  VIRTIO_PCI_BAR_SIZE,
  VIRTIO_PCI_MSIX_PBA_OFFSET,
  VIRTIO_PCI_MSIX_TABLE_OFFSET,
  VirtioPciDevice,
  virtioPciSpecOf,
} from "./pci.ts";
import { type BlockAio, SyncAio } from "./sync_io.ts";
import { VirtioPciBackend } from "./pci_backend.ts";
import type { VirtioViolation } from "./queue.ts";

/** Which aio engine serves the fuzzed device. */
export type FuzzBackend = "model" | "threads" | "io_uring";

/** What one run found. */
export interface FuzzReport {
  iterations: number;
  seconds: number;
  broken: number;
  violations: Record<string, number>;
  requests: BlockRequestCounts;
  recoveries: number;
  interrupts: number;
}

const RAM = 0x4_0000;
/** The disk: at least 64 MiB (sparse). */
export const FUZZ_DISK = 64 << 20;
const GUARD = 0x8000, GUARD_END = 0x9000; // request headers live here, device-readable only

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function tick(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/**
 * Runs the fuzzer. `progress[0]` counts iterations (the watchdog reads it).
 *
 * @param config seed, iterations, engine
 * @param progress shared counters
 * @returns the report; throws on any finding
 */
export async function fuzzBlock(
  config: { seed: number; iterations: number; backend: FuzzBackend },
  progress: Int32Array,
): Promise<FuzzReport> {
  const { seed, iterations, backend } = config;
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const chance = (p: number) => rnd() < p;
  const dir = (() => {
    try {
      return Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : undefined;
    } catch {
      return undefined;
    }
  })();
  const path = Deno.makeTempFileSync({ dir, suffix: ".img" });
  Deno.truncateSync(path, FUZZ_DISK);
  const disk = openDisk(parseDiskOption(path));
  const mem = GuestMemory.allocate(RAM);
  const shadow = new Uint8Array(GUARD_END - GUARD);
  const loop = backend === "model" ? null : new MainLoop();
  const running = loop?.run();
  let real: AioBackend | null = null;
  // Model engine: completions inline, or held back and delivered later in
  // random order with a small capacity (a full backend), and a fake loop
  // whose yield BH runs at random moments.
  const sync = new SyncAio();
  const held: (() => void)[] = [];
  let deferred = false, capacity = 4, completed = 0;
  let bhPending: (() => void) | null = null;
  const modelAio: BlockAio = {
    submit(req, cb) {
      const counted = (r: number) => {
        completed++;
        cb(r);
      };
      if (!deferred) return sync.submit(req, counted);
      if (held.length >= capacity) throw new AioQueueFullError("Aio queue is full");
      return sync.submit(req, (r) => held.push(() => counted(chance(0.05) ? -5 : r)));
    },
  };
  const fakeLoop = {
    bh(cb: () => void) {
      return { schedule: () => (bhPending = cb) };
    },
  };
  if (backend === "threads") real = new ThreadPool(loop!, { maxThreads: 4, queueSize: 16 });
  else if (backend === "io_uring") real = IoUring.create(loop!, { entries: 16 });
  const blk = new VirtioBlock({
    disk,
    aio: real ?? modelAio,
    serial: "fuzz",
    queueSize: 64,
    loop: loop ?? fakeLoop,
    batch: loop ? 16 : 4,
  });
  const sink = new CountingSink();
  let backendObj: VirtioPciBackend | null = null;
  const dev = new VirtioPciDevice(virtioPciSpecOf(blk), {
    interrupt: sink,
    link: forwardingLink(() => backendObj),
  });
  let broken = 0;
  let finding: Error | null = null;
  const violations: Record<string, number> = {};
  backendObj = new VirtioPciBackend({
    transport: dev,
    device: blk,
    mem,
    log: () => {},
    onBroken(violation: VirtioViolation | null, cause: unknown) {
      broken++;
      if (violation === null) {
        finding ??= new Error(
          `Device broke without a named virtio violation: ${
            cause instanceof Error ? cause.stack : String(cause)
          }`,
        );
        return;
      }
      violations[violation] = (violations[violation] ?? 0) + 1;
    },
  });
  const pciBus = new PciBus();
  pciBus.add(dev);
  const drv = new TestDriver(mem, dev, { size: 16, base: 0x1000 });
  const reg = (off: number, len: number, v: number) => drv.write(off, len, v);

  /** Completes everything outstanding (held completions, yield BHs, real I/O). */
  const settle = async () => {
    if (!loop) {
      for (let guard = 0; guard < 10_000 && (held.length > 0 || bhPending); guard++) {
        completeSome(true);
      }
      return;
    }
    while (real!.inFlight > 0) await tick();
    await tick();
  };
  const completeSome = (all = false) => {
    if (bhPending && (all || chance(0.5))) {
      const b = bhPending;
      bhPending = null;
      b();
    }
    for (let n = all ? held.length : int(held.length + 1); n > 0 && held.length > 0; n--) {
      held.splice(all ? 0 : int(held.length), 1)[0]();
    }
  };
  const inGuard = (a: number, l: number) => a < GUARD_END && a + l > GUARD && a + l <= RAM;
  // A guest address: mostly in RAM (never a ring start in the header page),
  // sometimes at the edge, far out, or near 2^53 / 2^64.
  const addr = (align = 1): number => {
    const r = rnd();
    let a = r < 0.85
      ? int(RAM)
      : r < 0.95
      ? RAM - int(64)
      : int(2 ** 32) * (chance(0.5) ? 1 : int(2 ** 20) + 1);
    if (a >= GUARD - 0x1000 && a < GUARD_END) a += 0x2000;
    return a - (a % align);
  };
  const huge = (): bigint =>
    [2n ** 53n, 2n ** 64n, 2n ** 63n, 0x20_0000n << 32n][int(4)] - BigInt(int(8192)) +
    BigInt(chance(0.5) ? int(64) : 0);
  const len = () =>
    chance(0.7) ? [1, 16, 512, 4096, 513][int(5)] : int(chance(0.5) ? 0x2_0000 : 2 ** 32);
  const w8 = (a: number, v: number) => {
    if (!mem.contains(a, 1)) return;
    mem.writeU8(a, v);
    if (a >= GUARD && a < GUARD_END) shadow[a - GUARD] = v;
  };
  const w16 = (a: number, v: number) => {
    w8(a, v & 0xff);
    w8(a + 1, (v >> 8) & 0xff);
  };
  const w32 = (a: number, v: number) => {
    w16(a, v & 0xffff);
    w16(a + 2, (v >>> 16) & 0xffff);
  };
  const w64 = (a: number, v: bigint) => {
    w32(a, Number(v & 0xffff_ffffn));
    w32(a + 4, Number((v >> 32n) & 0xffff_ffffn));
  };
  const header = (a: number, type: number, sector: number) => {
    blkHeader(mem, a, type, sector);
    shadow.set(mem.slice(a, 16), a - GUARD);
  };
  /** Writes a descriptor; device-writable buffers never cover the header page. */
  const desc = (
    table: number,
    i: number,
    a: number | bigint,
    l: number,
    fl: number,
    nx: number,
  ) => {
    let at = a;
    if ((fl & 2) && typeof at === "number" && inGuard(at, l)) at += GUARD_END;
    const d = table + 16 * i;
    w64(d, BigInt(at));
    w32(d + 8, l);
    w16(d + 12, fl);
    w16(d + 14, nx);
  };

  let size = 16, descAddr = 0, avail = 0, availIdx = 0, recoveries = 0;
  const ringReg = (lo: number, a: number) => {
    const v = chance(0.02) ? huge() : BigInt(a);
    reg(lo, 4, Number(v & 0xffff_ffffn));
    reg(lo + 4, 4, Number((v >> 32n) & 0xffff_ffffn));
  };
  const setupRandom = () => {
    reg(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    reg(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    const f = drv.deviceFeatures() & BigInt(Math.floor(rnd() * 2 ** 32)) << BigInt(int(2));
    const feats = chance(0.9) ? (drv.deviceFeatures() & ~(1n << BigInt(int(34)))) : f;
    reg(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    reg(VIRTIO_PCI_COMMON_GF, 4, Number(feats & 0xffff_ffffn));
    reg(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    reg(VIRTIO_PCI_COMMON_GF, 4, Number(feats >> 32n));
    const s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    reg(VIRTIO_PCI_COMMON_STATUS, 1, s);
    size = chance(0.97) ? 1 << (2 + int(5)) : int(300);
    descAddr = chance(0.97) ? 0x1000 + 16 * int(256) : addr();
    avail = chance(0.97) ? 0x4000 + 2 * int(512) : addr();
    const used = chance(0.97) ? 0x6000 + 4 * int(256) : addr();
    w16(avail + 2, 0);
    reg(VIRTIO_PCI_COMMON_Q_SELECT, 2, chance(0.95) ? 0 : int(4));
    reg(VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
    if (chance(0.3)) reg(VIRTIO_PCI_COMMON_Q_MSIX, 2, chance(0.8) ? int(3) : int(65536));
    if (chance(0.3)) reg(VIRTIO_PCI_COMMON_MSIX, 2, chance(0.8) ? int(3) : int(65536));
    ringReg(VIRTIO_PCI_COMMON_Q_DESCLO, descAddr);
    ringReg(VIRTIO_PCI_COMMON_Q_AVAILLO, avail);
    ringReg(VIRTIO_PCI_COMMON_Q_USEDLO, used);
    reg(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    reg(VIRTIO_PCI_COMMON_STATUS, 1, s | VIRTIO_CONFIG_S_DRIVER_OK);
    availIdx = 0;
  };

  const mutate = (v: number, range: number) => (chance(0.015) ? int(range) : v);
  const scribble = () => {
    const q = size || 1;
    const chains = 1 + int(3);
    for (let c = 0; c < chains; c++) {
      const head = int(q);
      if (chance(0.8)) {
        const segs = 2 + int(3);
        const ids = [head];
        for (let i = 1; i < segs; i++) ids.push(chance(0.95) ? (head + i) % q : int(q + 2));
        const hdr = GUARD + 16 * int(256);
        const type = [0, 1, 4, 8, 11, 13][int(6)];
        header(hdr, mutate(type, 2 ** 32), mutate(int(FUZZ_DISK / 512), 2 ** 32));
        if (chance(0.5)) {
          // A discard / write-zeroes range: small, or anything.
          const at = 0xb000 + 16 * int(4);
          w64(at, BigInt(int(FUZZ_DISK / 512)));
          w32(at + 8, chance(0.8) ? 1 + int(64) : int(2 ** 32));
          w32(at + 12, chance(0.9) ? int(2) : int(2 ** 32));
        }
        for (let i = 0; i < segs; i++) {
          const last = i === segs - 1;
          const write = i > 0 && (type === 0 || type === 8 || last);
          const a = i === 0 ? hdr : last ? 0x9000 + int(256) : 0xa000 + 512 * int(64);
          const l = i === 0 ? 16 : last ? 1 : 512 * (1 + int(8));
          const flags = mutate((write ? 2 : 0) | (last ? 0 : 1), 8);
          const where = chance(0.01) ? huge() : mutate(a, 2 ** 32);
          desc(descAddr, ids[i], where, mutate(l, 2 ** 32), flags, mutate(ids[i + 1] ?? 0, 65536));
        }
        if (chance(0.05)) {
          // An indirect table, possibly malformed.
          const table = 0xc000 + 16 * int(64);
          for (let i = 0; i < 4; i++) {
            const a = chance(0.8) ? 0xa000 + 512 * int(64) : chance(0.5) ? addr() : huge();
            desc(table, i, a, chance(0.8) ? 512 : len(), int(8), int(6));
          }
          desc(
            descAddr,
            head,
            chance(0.95) ? table : huge(),
            mutate(16 * (1 + int(4)), 2 ** 32),
            4 | (chance(0.1) ? 1 : 0),
            int(q),
          );
        }
      } else {
        for (let i = 0; i < 1 + int(4); i++) {
          const a = chance(0.05) ? huge() : addr();
          desc(
            descAddr,
            chance(0.95) ? int(q) : int(70000),
            a,
            len(),
            int(65536),
            int(chance(0.9) ? q : 65536),
          );
        }
      }
      w16(avail + 4 + 2 * ((availIdx + c) % q), chance(0.97) ? head : int(65536));
    }
    const k = chance(0.97) ? chains : int(65536);
    availIdx = (availIdx + k) & 0xffff;
    w16(avail + 2, availIdx);
    if (chance(0.05)) w16(avail + 4 + 2 * size, int(65536)); // used_event
    if (chance(0.05)) w16(avail, int(2)); // flags
  };

  /** Random MSI-X programming: table entries, PBA, the enable and mask-all bits. */
  const msixWrite = () => {
    const cap = dev.msix.capOffset;
    const what = int(4);
    if (what === 0) {
      const flags = [0, 0x8000, 0xc000, 0x4000][int(4)];
      dev.configWrite(PCI_COMMAND, new Uint8Array([PCI_COMMAND_MEMORY, 0]));
      dev.configWrite(cap + PCI_MSIX_FLAGS, new Uint8Array([0, flags >> 8]));
    } else if (what === 1) {
      const off = VIRTIO_PCI_MSIX_TABLE_OFFSET + 4 * int(16);
      const v = chance(0.5) ? (chance(0.5) ? 0xfee0_0000 : 0) : int(2 ** 32);
      drv.write(off, 4, chance(0.3) ? int(2) : v);
    } else if (what === 2) {
      drv.read(VIRTIO_PCI_MSIX_PBA_OFFSET + 4 * int(4), 4);
    } else {
      drv.write(VIRTIO_PCI_MSIX_TABLE_OFFSET + int(0x2000), [1, 2, 4, 8][int(4)], int(2 ** 32));
    }
  };

  /** A request on a freshly initialised device; checks status and used.len. */
  const probe = async (segs: { addr: number; len: number; write?: boolean }[], usedLen: number) => {
    w8(0x9000, 0xee);
    drv.add(segs);
    drv.kick();
    await settle();
    if (finding) throw finding;
    const u = drv.collect();
    if (u.length !== 1) throw new Error(`Probe completed ${u.length} requests`);
    if (mem.readU8(0x9000) !== VIRTIO_BLK_S_OK) {
      throw new Error(`Probe status ${mem.readU8(0x9000)}`);
    }
    if (u[0].len !== usedLen) throw new Error(`Probe used.len ${u[0].len}, expected ${usedLen}`);
  };
  const recover = async () => {
    deferred = false;
    await settle();
    if (!drv.init(0xffff_ffff_ffffn)) throw new Error("Re-init after reset refused");
    if (drv.status() & VIRTIO_CONFIG_S_NEEDS_RESET) throw new Error("NEEDS_RESET after reset");
    const sector = int(FUZZ_DISK / 512 - 2);
    const data = new Uint8Array(1024).map(() => int(256));
    mem.write(0xa000, data);
    header(GUARD, VIRTIO_BLK_T_OUT, sector);
    const st = { addr: 0x9000, len: 1, write: true };
    await probe([
      { addr: GUARD, len: 16 },
      { addr: 0xa000, len: 512 },
      { addr: 0xa200, len: 512 },
      st,
    ], 1);
    header(GUARD + 16, VIRTIO_BLK_T_IN, sector);
    mem.fill(0xd000, 1024, 0);
    await probe(
      [{ addr: GUARD + 16, len: 16 }, { addr: 0xd000, len: 1024, write: true }, st],
      1025,
    );
    if (!mem.slice(0xd000, 1024).every((b, i) => b === data[i])) {
      throw new Error("Read-back differs");
    }
    header(GUARD + 32, VIRTIO_BLK_T_GET_ID, 0);
    mem.fill(0xe000, 20, 0xff);
    await probe([{ addr: GUARD + 32, len: 16 }, { addr: 0xe000, len: 20, write: true }, st], 21);
    const id = new TextDecoder().decode(mem.slice(0xe000, 4));
    if (id !== "fuzz" || mem.readU8(0xe004) !== 0) throw new Error(`GET_ID returned ${id}`);
    header(GUARD + 48, VIRTIO_BLK_T_WRITE_ZEROES, 0);
    w64(0xb000, BigInt(sector));
    w32(0xb008, 2);
    w32(0xb00c, int(2));
    await probe([{ addr: GUARD + 48, len: 16 }, { addr: 0xb000, len: 16 }, st], 1);
    header(GUARD + 64, VIRTIO_BLK_T_IN, sector);
    await probe(
      [{ addr: GUARD + 64, len: 16 }, { addr: 0xd000, len: 1024, write: true }, st],
      1025,
    );
    if (!mem.slice(0xd000, 1024).every((b) => b === 0)) throw new Error("WRITE_ZEROES left data");
    recoveries++;
  };
  const checkGuard = (it: number) => {
    const now = mem.slice(GUARD, GUARD_END - GUARD);
    for (let i = 0; i < now.length; i++) {
      if (now[i] !== shadow[i]) {
        throw new Error(
          `Device wrote 0x${now[i].toString(16)} into device-readable memory at 0x${
            (GUARD + i).toString(16)
          } (iteration ${it})`,
        );
      }
    }
  };

  const started = performance.now();
  try {
    setupRandom();
    for (let it = 0; it < iterations; it++) {
      Atomics.store(progress, 0, it);
      const r = rnd();
      if (r < 0.01 || ((dev.status & VIRTIO_CONFIG_S_NEEDS_RESET) && chance(0.3))) {
        if (loop) await settle();
        setupRandom();
        deferred = chance(0.5);
        capacity = 1 + int(8);
      } else if (r < 0.013) {
        completeSome();
        await recover();
        setupRandom();
      } else if (r < 0.02) {
        const d = new Uint8Array([1, 2, 4, 8][int(4)]).map(() => int(256));
        const off = chance(0.5) ? int(VIRTIO_PCI_COMMON_CFG_SIZE) : int(VIRTIO_PCI_BAR_SIZE);
        const small = d.subarray(0, Math.min(d.length, 4));
        const what = int(6);
        if (what === 0) dev.barWrite(VIRTIO_PCI_BAR, off, d);
        else if (what === 1) dev.barRead(VIRTIO_PCI_BAR, off, d);
        else if (what === 2) dev.configWrite(int(256), small);
        else if (what === 3) dev.configRead(int(256), small);
        else if (what === 4) pciBus.configIo.write(int(8), small);
        else pciBus.configIo.read(int(8), small);
      } else if (r < 0.03) msixWrite();
      else {
        scribble();
        drv.kick();
      }
      if (!loop && chance(0.3)) completeSome();
      else if (loop && chance(0.3)) await tick();
      if (chance(0.2)) drv.read(0x1000, 1); // ISR read-to-clear
      if (finding) throw finding;
      checkGuard(it);
    }
    await recover();
    checkGuard(iterations);
    if (finding) throw finding;
  } catch (e) {
    throw new Error(
      `Fuzz (${backend}, seed ${seed}): ${e instanceof Error ? e.stack : e}`,
    );
  } finally {
    await settle().catch(() => {});
    if (real) await real.close();
    if (loop) {
      loop.stop();
      await running;
      loop.close();
    }
    disk.close();
    mem.close();
    Deno.removeSync(path);
  }
  return {
    iterations,
    seconds: (performance.now() - started) / 1000,
    broken,
    violations,
    requests: { ...blk.requestCounts },
    recoveries,
    interrupts: sink.raised + sink.msixCount,
  };
}
