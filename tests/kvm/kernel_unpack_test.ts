// A bzImage's kernel unpacked by the VMM (vm/unpacked_kernel_source.ts):
// the stock Debian kernel (xz; its cloud flavour, LZ4, and a gzip twin too)
// boots without its own decompressor running, at a KASLR placement the VMM
// chose and relocated (physical and virtual), at the linked addresses with
// `nokaslr`, and through its decompressor as before with
// DENOVMM_KERNEL_UNPACK=0. A kernel the cache misses boots through its
// decompressor while the VMM unpacks it for the cache; the next boot reads
// it from there. The start-up trace says which way the VMM loaded the
// kernel (the only permission added: reading that one variable).
import assert from "node:assert/strict";
import { buildTestInitramfs, INIT_MARKER } from "../fixtures/initramfs.ts";
import { linuxFixture } from "./fixtures.ts";
import { debianKernel } from "../fixtures/debian.ts";
import { gzipPayloadKernel } from "../fixtures/gzip_kernel.ts";
import { runLog, runVmm } from "./_vmm_process.ts";

const MARK = "DENOVMM-KERNEL";
const SCRIPT =
  `echo "${MARK} code=$(sed -n 's/^ *\\([0-9a-f]*\\)-[0-9a-f]* : Kernel code$/\\1/p' /proc/iomem)` +
  ` text=$(sed -n 's/^\\([0-9a-f]*\\) . _text$/\\1/p' /proc/kallsyms)"\n`;
const LINKED_CODE = "01000000";
const LINKED_TEXT = "ffffffff81000000";

function runBoot(append: string, env: Record<string, string>, kernel: string) {
  return buildTestInitramfs({ script: SCRIPT }).then((initrd) =>
    runVmm([
      "--kernel",
      kernel,
      "--initrd",
      initrd,
      "--append",
      `console=ttyS0 loglevel=1 panic=-1 ${append}`.trim(),
      "--memory",
      "512M",
    ], {
      env: { DENOVMM_TRACE_START: "1", ...env },
      permissions: ["--allow-ffi", "--allow-env=DENOVMM_TRACE_START"],
    })
  );
}

async function boot(append: string, env: Record<string, string> = {}, kernel?: string) {
  const r = await runBoot(append, env, kernel ?? (await linuxFixture()).kernel);
  assert.ok(r.stdout.includes(`${INIT_MARKER} action=poweroff`), runLog(r));
  assert.equal(r.code, 0, runLog(r));
  const m = r.stdout.match(new RegExp(`${MARK} code=([0-9a-f]+) text=([0-9a-f]+)`));
  assert.ok(m, runLog(r));
  const loaded = r.stderr.match(/trace .* kernel (\(unpacked: (\w+)\) )?and initrd loaded/);
  assert.ok(loaded, runLog(r));
  return { code: m[1].padStart(8, "0"), text: m[2], unpacked: loaded[2], r };
}

/**
 * A boot of the kernel unpacked by the VMM, from its cache: after a first
 * boot that fills it, when this lane's host has not booted the kernel yet.
 * `selfDecompresses: false` for a kernel whose own decompressor cannot run
 * (the gzip twin's is built for xz): its first boot's guest crashes, the
 * fill happens all the same.
 */
async function bootUnpacked(kernel: string, selfDecompresses = true) {
  const first = await runBoot("", {}, kernel);
  if (!/kernel not in the cache/.test(first.stderr)) return await boot("", {}, kernel);
  if (selfDecompresses) {
    assert.ok(first.stdout.includes(`${INIT_MARKER} action=poweroff`), runLog(first));
    assert.equal(first.code, 0, runLog(first));
  }
  assert.match(
    first.stderr,
    /kernel not in the cache: the guest decompresses it; unpacking \w+ on the pool/,
    runLog(first),
  );
  assert.match(first.stderr, /trace .* kernel and initrd loaded/, runLog(first));
  assert.match(first.stderr, /kernel unpacked and stored in the cache/, runLog(first));
  return await boot("", {}, kernel);
}

Deno.test("the VMM unpacks the bzImage's kernel and places it at random, as the decompressor would", async () => {
  const b = await bootUnpacked((await linuxFixture()).kernel);
  assert.equal(b.unpacked, "cache", runLog(b.r));
  assert.doesNotMatch(b.r.stderr, /could not unpack/);
  // Both at the linked addresses has odds of about 1 in 46000 under KASLR.
  assert.ok(
    b.code !== LINKED_CODE || b.text !== LINKED_TEXT,
    `not randomized: ${b.code} ${b.text}`,
  );
  assert.equal(parseInt(b.code, 16) % 0x200000, 0);
  assert.equal((BigInt(`0x${b.text}`) - BigInt(`0x${LINKED_TEXT}`)) % 0x200000n, 0n);
});

Deno.test("with nokaslr the unpacked kernel runs where it was linked", async () => {
  const b = await boot("nokaslr");
  assert.equal(b.unpacked, "cache", runLog(b.r));
  assert.equal(b.code, LINKED_CODE);
  assert.equal(b.text, LINKED_TEXT);
});

Deno.test("DENOVMM_KERNEL_UNPACK=0 leaves the decompression to the guest", async () => {
  const b = await boot("", { DENOVMM_KERNEL_UNPACK: "0" });
  assert.equal(b.unpacked, undefined, runLog(b.r));
});

Deno.test("Debian's cloud kernel, an LZ4 payload, is unpacked by the VMM and boots relocated", async () => {
  const cloud = await debianKernel("cloud-amd64");
  const b = await bootUnpacked(cloud.vmlinuz);
  assert.equal(b.unpacked, "cache", runLog(b.r));
  assert.doesNotMatch(b.r.stderr, /could not unpack/);
  assert.equal(parseInt(b.code, 16) % 0x200000, 0);
  assert.equal((BigInt(`0x${b.text}`) - BigInt(`0x${LINKED_TEXT}`)) % 0x200000n, 0n);
});

Deno.test("a gzip payload (the Debian kernel's, gzipped) is unpacked by the VMM and boots", async () => {
  const gz = await gzipPayloadKernel((await linuxFixture()).kernel);
  const b = await bootUnpacked(gz, false);
  assert.equal(b.unpacked, "cache", runLog(b.r));
  assert.doesNotMatch(b.r.stderr, /could not unpack/);
  assert.equal(parseInt(b.code, 16) % 0x200000, 0);
});
