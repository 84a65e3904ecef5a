import assert from "node:assert/strict";
import { parseCpio, S_IFMT, S_IFREG } from "../fixtures/cpio.ts";
import { debianKernel } from "../fixtures/debian.ts";
import { buildL1Initramfs, L1_INIT, L1_QEMU_BINARY, sharedLibraries } from "./l1_image.ts";

const decoder = new TextDecoder();

Deno.test("sharedLibraries lists the Deno binary's loader and libc", async () => {
  const libs = await sharedLibraries(Deno.execPath());
  assert.ok(libs.some((l) => /\/ld-linux-x86-64\.so\.2$/.test(l)), libs.join(" "));
  assert.ok(libs.some((l) => /\/libc\.so\.6$/.test(l)), libs.join(" "));
  assert.ok(libs.every((l) => l.startsWith("/")));
});

Deno.test("L1 initramfs carries /init, busybox, KVM/9p/virtio-serial modules and Deno's libs", async () => {
  const kernel = await debianKernel("amd64");
  const path = await buildL1Initramfs(kernel, Deno.execPath());
  const by = new Map(parseCpio(await Deno.readFile(path)).map((e) => [e.name, e]));
  assert.equal(decoder.decode(by.get("init")!.data), L1_INIT);
  assert.equal(by.get("bin/busybox")!.mode & S_IFMT, S_IFREG);
  const order = decoder.decode(by.get("etc/denovmm/modules")!.data).trim().split("\n");
  const at = (m: string) => {
    assert.ok(order.includes(m), `${m} in ${order.join(" ")}`);
    return order.indexOf(m);
  };
  assert.ok(at("irqbypass") < at("kvm") && at("kvm") < at("kvm_amd") && at("ccp") < at("kvm_amd"));
  assert.ok(at("virtio_pci") < at("9pnet_virtio") && at("9pnet") < at("9p"));
  assert.ok(at("netfs") < at("fscache") && at("fscache") < at("9p"));
  at("virtio_console");
  for (const lib of await sharedLibraries(Deno.execPath())) {
    const e = by.get(lib.slice(1));
    assert.ok(e, `${lib} in the image`);
    assert.equal(e.data.length, (await Deno.stat(lib)).size);
  }
});

Deno.test("L1 initramfs with qemu carries QEMU, its libraries and its x86 firmware", async () => {
  const kernel = await debianKernel("amd64");
  const path = await buildL1Initramfs(kernel, Deno.execPath(), { qemu: true });
  const names = new Set(parseCpio(await Deno.readFile(path)).map((e) => e.name));
  assert.ok(names.has(L1_QEMU_BINARY.slice(1)));
  for (const lib of await sharedLibraries(L1_QEMU_BINARY)) {
    assert.ok(names.has(lib.slice(1)), `${lib} in the image`);
  }
  for (const f of ["share/seabios/bios-256k.bin", "share/qemu/linuxboot_dma.bin"]) {
    assert.ok(names.has(`usr/${f}`), `${f} in the image`);
  }
  assert.ok(names.has("init"));
});
