/**
 * Throws random queue layouts, ring contents, descriptor chains, requests and
 * register writes at virtio-blk over virtio-pci. Nothing may escape, hang or
 * touch memory outside guest RAM, and a reset must always bring the device
 * back. Reproduce a failure with DENOVMM_FUZZ_SEED=<seed>; scale with
 * DENOVMM_FUZZ_ITERATIONS.
 */
import assert from "node:assert/strict";
import { AioQueueFullError } from "../../aio/types.ts";
import { GuestMemory } from "../../memory/guest_memory.ts";
import { blkHeader, CountingSink, TestDriver } from "./_test_driver.ts";
import { VirtioBlock } from "./block.ts";
import {
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_IN,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_PCI_COMMON_CFG_SIZE,
  VIRTIO_PCI_COMMON_GF,
  VIRTIO_PCI_COMMON_GFSELECT,
  VIRTIO_PCI_COMMON_Q_AVAILLO,
  VIRTIO_PCI_COMMON_Q_DESCLO,
  VIRTIO_PCI_COMMON_Q_ENABLE,
  VIRTIO_PCI_COMMON_Q_SELECT,
  VIRTIO_PCI_COMMON_Q_SIZE,
  VIRTIO_PCI_COMMON_Q_USEDLO,
  VIRTIO_PCI_COMMON_STATUS,
} from "./constants.ts";
import { openDisk, parseDiskOption } from "./disk_file.ts";
import {
  VIRTIO_PCI_BAR,
  VIRTIO_PCI_BAR_SIZE,
  VirtioPciBackend,
  VirtioPciDevice,
  virtioPciSpecOf,
} from "./pci.ts";
import { type BlockAio, SyncAio } from "./sync_io.ts";
import { PciBus } from "../pci/pci_bus.ts";

const RAM = 0x4_0000;
const DISK = 0x1_0000;

/** mulberry32: small, seedable, good enough to explore. */
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

Deno.test("fuzz: random queues and chains never escape, hang or leave the device stuck", () => {
  const env = Deno.env.get("DENOVMM_FUZZ_SEED");
  const seed = env ? Number(env) : (Math.random() * 2 ** 32) >>> 0;
  const iterations = Number(Deno.env.get("DENOVMM_FUZZ_ITERATIONS") ?? 100_000);
  console.log(
    `fuzz seed ${seed} (DENOVMM_FUZZ_SEED=${seed} to reproduce), ${iterations} iterations`,
  );
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
  Deno.truncateSync(path, DISK);
  const disk = openDisk(parseDiskOption(path));
  const mem = GuestMemory.allocate(RAM);
  // Completions either inline, or held back and delivered later in random
  // order (as a thread pool would), with a small capacity so the device
  // also meets a full backend.
  const sync = new SyncAio();
  const held: ((r: number) => void)[] = [];
  const heldResults: number[] = [];
  let deferred = false, capacity = 4;
  const aio: BlockAio = {
    submit(req, cb) {
      const counted = (r: number) => {
        completed++;
        cb(r);
      };
      if (!deferred) return sync.submit(req, counted);
      if (held.length >= capacity) throw new AioQueueFullError("Aio queue is full");
      return sync.submit(req, (r) => {
        held.push(counted);
        heldResults.push(r);
      });
    },
  };
  const completeSome = () => {
    for (let n = int(held.length + 1); n > 0 && held.length > 0; n--) {
      const i = int(held.length);
      const cb = held.splice(i, 1)[0];
      const r = heldResults.splice(i, 1)[0];
      cb(chance(0.05) ? -5 : r);
    }
  };
  const blk = new VirtioBlock({ disk, aio, serial: "fuzz", queueSize: 64 });
  const dev = new VirtioPciDevice(virtioPciSpecOf(blk));
  const sink = new CountingSink();
  let broken = 0;
  const reasons = new Map<string, number>();
  const backend = new VirtioPciBackend({
    transport: dev,
    device: blk,
    mem,
    interrupt: sink,
    log: (m) => {
      broken++;
      const k = m.replace(/[0-9]+/g, "N");
      reasons.set(k, (reasons.get(k) ?? 0) + 1);
    },
  });
  dev.link = backend;
  const pciBus = new PciBus();
  pciBus.add(dev);
  const drv = new TestDriver(mem, dev, { size: 16, base: 0x1000 });
  const reg = (off: number, len: number, v: number) => drv.write(off, len, v);

  // A plausible-or-not guest address: mostly in RAM, sometimes at the edge or far out.
  const addr = (align = 1) => {
    const r = rnd();
    const a = r < 0.85
      ? int(RAM)
      : r < 0.95
      ? RAM - int(64)
      : int(2 ** 32) * (chance(0.5) ? 1 : int(2 ** 20) + 1);
    return a - (a % align);
  };
  const len =
    () => (chance(0.7) ? [1, 16, 512, 4096, 513][int(5)] : int(chance(0.5) ? 0x2_0000 : 2 ** 32));

  let size = 16, desc = 0, avail = 0, used = 0, availIdx = 0, recoveries = 0, completed = 0;
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
    desc = chance(0.97) ? 0x1000 + 16 * int(256) : addr();
    avail = chance(0.97) ? 0x4000 + 2 * int(512) : addr();
    used = chance(0.97) ? 0x6000 + 4 * int(512) : addr();
    write16(avail + 2, 0);
    reg(VIRTIO_PCI_COMMON_Q_SELECT, 2, chance(0.95) ? 0 : int(4));
    reg(VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
    reg(VIRTIO_PCI_COMMON_Q_DESCLO, 4, desc % 2 ** 32);
    reg(VIRTIO_PCI_COMMON_Q_DESCLO + 4, 4, Math.floor(desc / 2 ** 32));
    reg(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, avail % 2 ** 32);
    reg(VIRTIO_PCI_COMMON_Q_AVAILLO + 4, 4, Math.floor(avail / 2 ** 32));
    reg(VIRTIO_PCI_COMMON_Q_USEDLO, 4, used % 2 ** 32);
    reg(VIRTIO_PCI_COMMON_Q_USEDLO + 4, 4, Math.floor(used / 2 ** 32));
    reg(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    reg(VIRTIO_PCI_COMMON_STATUS, 1, s | VIRTIO_CONFIG_S_DRIVER_OK);
    availIdx = 0;
  };

  const write16 = (a: number, v: number) => mem.contains(a, 2) && mem.writeU16(a, v);
  const writeDesc = (i: number, a: number, l: number, flags: number, next: number) => {
    const d = desc + 16 * i;
    if (!mem.contains(d, 16)) return;
    mem.writeU64(d, BigInt(a));
    mem.writeU32(d + 8, l);
    mem.writeU16(d + 12, flags);
    mem.writeU16(d + 14, next);
  };
  const mutate = (v: number, range: number) => (chance(0.015) ? int(range) : v);
  const scribble = () => {
    const q = size || 1;
    // Mostly well-formed blk requests with occasional mutations, sometimes garbage.
    const chains = 1 + int(3);
    for (let c = 0; c < chains; c++) {
      const head = int(q);
      if (chance(0.8)) {
        const segs = 2 + int(3);
        const ids = [head];
        for (let i = 1; i < segs; i++) ids.push(chance(0.95) ? (head + i) % q : int(q + 2));
        const hdr = 0x8000 + 16 * int(256);
        const type = [0, 1, 4, 8, 11, 13][int(6)];
        blkHeader(mem, hdr, mutate(type, 2 ** 32), mutate(int(DISK / 512), 2 ** 32));
        if (chance(0.5)) mem.writeU64(0xb000 + 16 * int(4), BigInt(int(DISK / 512)));
        for (let i = 0; i < segs; i++) {
          const last = i === segs - 1;
          const write = i > 0 && (type === 0 || type === 8 || last);
          const a = i === 0 ? hdr : last ? 0x9000 + int(256) : 0xa000 + 512 * int(64);
          const l = i === 0 ? 16 : last ? 1 : 512 * (1 + int(8));
          let flags = (write ? 2 : 0) | (last ? 0 : 1);
          flags = mutate(flags, 8);
          writeDesc(
            ids[i],
            mutate(a, 2 ** 32),
            mutate(l, 2 ** 32),
            flags,
            mutate(ids[i + 1] ?? 0, 65536),
          );
        }
        if (chance(0.05)) {
          // An indirect table, possibly malformed.
          const table = 0xc000 + 16 * int(64);
          for (let i = 0; i < 4; i++) {
            mem.writeU64(table + 16 * i, BigInt(chance(0.8) ? 0xa000 + 512 * int(64) : addr()));
            mem.writeU32(table + 16 * i + 8, chance(0.8) ? 512 : len());
            mem.writeU16(table + 16 * i + 12, int(8));
            mem.writeU16(table + 16 * i + 14, int(6));
          }
          writeDesc(
            head,
            table,
            mutate(16 * (1 + int(4)), 2 ** 32),
            4 | (chance(0.1) ? 1 : 0),
            int(q),
          );
        }
      } else {
        for (let i = 0; i < 1 + int(4); i++) {
          writeDesc(
            chance(0.95) ? int(q) : int(70000),
            addr(),
            len(),
            int(65536),
            int(chance(0.9) ? q : 65536),
          );
        }
      }
      write16(avail + 4 + 2 * ((availIdx + c) % q), chance(0.97) ? head : int(65536));
    }
    const k = chance(0.97) ? chains : int(65536);
    availIdx = (availIdx + k) & 0xffff;
    write16(avail + 2, availIdx);
    if (chance(0.05)) write16(avail + 4 + 2 * size, int(65536)); // used_event
    if (chance(0.05)) write16(avail, int(2)); // flags
  };

  const recover = () => {
    deferred = false;
    // A reset completes only once in-flight requests are done: deliver them all.
    while (held.length > 0) completeSome();
    assert.ok(drv.init(0xffff_ffff_ffffn), "re-init after reset");
    const st = drv.status();
    assert.equal(st & VIRTIO_CONFIG_S_NEEDS_RESET, 0, `status ${st} after reset`);
    blkHeader(mem, 0x8000, VIRTIO_BLK_T_IN, 1);
    mem.writeU8(0x9000, 0xee);
    drv.add([{ addr: 0x8000, len: 16 }, { addr: 0xa000, len: 512, write: true }, {
      addr: 0x9000,
      len: 1,
      write: true,
    }]);
    drv.kick();
    const u = drv.collect();
    assert.equal(u.length, 1, "recovered device completes a request");
    assert.equal(mem.readU8(0x9000), VIRTIO_BLK_S_OK);
    recoveries++;
  };

  const started = performance.now();
  try {
    setupRandom();
    for (let it = 0; it < iterations; it++) {
      try {
        const r = rnd();
        if (r < 0.01 || ((dev.status & VIRTIO_CONFIG_S_NEEDS_RESET) && chance(0.3))) {
          setupRandom();
          deferred = chance(0.5);
          capacity = 1 + int(8);
        } else if (r < 0.011) {
          completeSome();
          recover();
        } else if (r < 0.012) recover();
        else if (r < 0.02) {
          // Random register writes anywhere in the BAR or config space.
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
        } else {
          scribble();
          drv.kick();
        }
        if (chance(0.3)) completeSome();
        if (chance(0.2)) drv.read(0x1000, 1); // ISR read-to-clear
      } catch (e) {
        throw new Error(
          `Escaped at iteration ${it} (seed ${seed}): ${e instanceof Error ? e.stack : e}`,
        );
      }
    }
    completeSome();
    recover();
  } finally {
    disk.close();
    mem.close();
    Deno.removeSync(path);
  }
  const secs = (performance.now() - started) / 1000;
  console.log(
    `fuzz: ${iterations} iterations in ${secs.toFixed(1)} s, device broken ${broken} times, ` +
      `${recoveries} verified recoveries, interrupts ${
        sink.raised + sink.msixCount
      }, ${completed} I/O requests completed`,
  );
  console.log(`fuzz: ${reasons.size} distinct reasons to mark the device broken`);
  assert.ok(broken > 0, "the fuzzer should trip validation");
});
