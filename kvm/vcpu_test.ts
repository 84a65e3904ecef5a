// KvmVcpu's reading of the coalesced ring, over an anonymous mapping laid
// out as a vCPU's (kvm_run, the PIO page, the ring's page): no KVM needed.
import assert from "node:assert/strict";
import { KvmVcpu } from "./vcpu.ts";
import { kvm_coalesced_mmio, KVM_COALESCED_MMIO_MAX, kvm_coalesced_mmio_ring } from "./abi.ts";
import {
  hostBuffer,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  mmap,
  munmap,
  PROT_READ,
  PROT_WRITE,
} from "../sys/fd.ts";

const PAGE = 4096;
const RING = 2 * PAGE;
const SIZE = 3 * PAGE;

function withVcpu(fn: (vcpu: KvmVcpu, ring: DataView) => void, coalescedRing = RING): void {
  const addr = mmap(SIZE, { prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS });
  try {
    const vcpu = new KvmVcpu({ index: 0, fd: -1, runAddr: addr, runSize: SIZE, coalescedRing });
    fn(vcpu, new DataView(hostBuffer(addr, SIZE), RING, PAGE));
  } finally {
    munmap(addr, SIZE);
  }
}

/** Writes entry i of the ring as the kernel does. */
function put(ring: DataView, i: number, port: number, bytes: number[], pio = 1): void {
  const e = kvm_coalesced_mmio_ring.fields.coalesced_mmio + i * kvm_coalesced_mmio.size;
  const f = kvm_coalesced_mmio.fields;
  ring.setBigUint64(e + f.phys_addr, BigInt(port), true);
  ring.setUint32(e + f.len, bytes.length, true);
  ring.setUint32(e + f.pio, pio, true);
  bytes.forEach((b, k) => ring.setUint8(e + f.data + k, b));
}

function setIndexes(ring: DataView, first: number, last: number): void {
  ring.setUint32(kvm_coalesced_mmio_ring.fields.first, first, true);
  ring.setUint32(kvm_coalesced_mmio_ring.fields.last, last, true);
}

function drain(vcpu: KvmVcpu): [number, number[]][] {
  const seen: [number, number[]][] = [];
  vcpu.drainCoalesced((port, data) => seen.push([port, [...data]]));
  return seen;
}

Deno.test("drainCoalesced hands over queued port writes in order and frees their entries", () => {
  withVcpu((vcpu, ring) => {
    assert.deepEqual(drain(vcpu), []); // empty: first === last
    put(ring, 0, 0xcf8, [0x00, 0x08, 0x00, 0x80]);
    put(ring, 1, 0xcf9, [0x06]);
    put(ring, 2, 0xfee00000, [1, 2, 3, 4], 0); // an MMIO entry: not ours, skipped
    setIndexes(ring, 0, 3);
    assert.deepEqual(drain(vcpu), [[0xcf8, [0x00, 0x08, 0x00, 0x80]], [0xcf9, [0x06]]]);
    assert.equal(ring.getUint32(kvm_coalesced_mmio_ring.fields.first, true), 3);
    assert.deepEqual(drain(vcpu), []);
  });
});

Deno.test("drainCoalesced follows the ring around its end", () => {
  withVcpu((vcpu, ring) => {
    const max = KVM_COALESCED_MMIO_MAX;
    assert.equal(max, 170); // (4096 - 8) / 24, as <linux/kvm.h> computes it
    put(ring, max - 1, 0xcf8, [1, 0, 0, 0x80]);
    put(ring, 0, 0xcf8, [2, 0, 0, 0x80]);
    setIndexes(ring, max - 1, 1);
    assert.deepEqual(drain(vcpu).map(([, d]) => d[0]), [1, 2]);
    assert.equal(ring.getUint32(kvm_coalesced_mmio_ring.fields.first, true), 1);
  });
});

Deno.test("drainCoalesced ignores indexes outside the ring, and a vCPU without a ring", () => {
  withVcpu((vcpu, ring) => {
    put(ring, 0, 0xcf8, [1, 0, 0, 0x80]);
    setIndexes(ring, 0, KVM_COALESCED_MMIO_MAX + 5);
    assert.deepEqual(drain(vcpu), []);
    setIndexes(ring, KVM_COALESCED_MMIO_MAX, 0);
    assert.deepEqual(drain(vcpu), []);
  });
  withVcpu((vcpu, ring) => {
    put(ring, 0, 0xcf8, [1, 0, 0, 0x80]);
    setIndexes(ring, 0, 1);
    assert.deepEqual(drain(vcpu), []);
  }, -1);
});
