/**
 * The nested host's ("L1") initramfs: busybox, the KVM, 9p and virtio-serial
 * modules of the Debian kernel, the Deno binary's shared libraries and loader,
 * and an `/init` that hands over to a per-run script on the run share.
 *
 * Everything that changes per run (command, environment, paths) lives in that
 * script, so the image is built once per kernel/busybox/Deno and cached.
 *
 * @module
 */

import type { CpioWriter } from "../fixtures/cpio.ts";
import { exec } from "../fixtures/_exec.ts";
import { type DebianKernel, debianPackage } from "../fixtures/debian.ts";
import { addBusyboxRoot, addModules, cachedCpio } from "../fixtures/initramfs.ts";

/** Modules the L1 loads, in this order (dependencies are added automatically). */
export const L1_MODULES: readonly string[] = [
  "irqbypass",
  "kvm",
  "ccp",
  "kvm-amd",
  "virtio_pci",
  "9pnet_virtio",
  "9p",
  "virtio_console",
];

/** Mount point of the per-run share inside the L1 (exit code, run script, status). */
export const L1_RUN_DIR = "/run/denovmm";

/** 9p mount tag of the per-run share. */
export const L1_RUN_TAG = "denovmm_run";

/** Line prefix the L1's `/init` uses on its console. */
export const L1_MARKER = "DENOVMM-L1";

/**
 * The L1's `/init`: mount pseudo filesystems, load modules, mount the run
 * share, record whether /dev/kvm appeared, run `run.sh` from the share only if
 * it did, then flush and power off (QEMU runs with -no-reboot, so it exits).
 */
export const L1_INIT = `#!/bin/sh
/bin/busybox --install -s /bin 2>/dev/null
export PATH=/bin
echo "${L1_MARKER} init"
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
# As a distro does: benchmarks count KVM's exits with its tracepoints.
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
for m in $(cat /etc/denovmm/modules); do
  insmod /lib/modules/$m.ko || echo "${L1_MARKER} insmod-failed=$m"
done
mkdir -p ${L1_RUN_DIR}
mounted=no
for i in 1 2 3 4 5 6 7 8 9 10; do
  if mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 ${L1_RUN_TAG} ${L1_RUN_DIR}; then
    mounted=yes
    break
  fi
  sleep 0.3
done
if [ $mounted = yes ]; then
  i=0
  while [ ! -c /dev/kvm ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
  if [ -c /dev/kvm ]; then
    echo "${L1_MARKER} kvm=ok uptime=$(cut -d' ' -f1 /proc/uptime)"
    echo ok > ${L1_RUN_DIR}/kvm
    /bin/sh ${L1_RUN_DIR}/run.sh
  else
    echo "${L1_MARKER} kvm=missing"
    echo missing > ${L1_RUN_DIR}/kvm
  fi
  sync
  umount ${L1_RUN_DIR}
else
  echo "${L1_MARKER} error=run share mount failed"
fi
sync
poweroff -f
echo o > /proc/sysrq-trigger
sleep 3600
`;

/**
 * Host paths of the shared libraries and loader `ldd` reports for `binary`.
 *
 * @example
 * ```ts ignore
 * await sharedLibraries(Deno.execPath()); // ["/lib/x86_64-linux-gnu/libdl.so.2", ...]
 * ```
 */
export async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await exec("ldd", [binary]);
  const libs: string[] = [];
  for (const line of stdout.split("\n")) {
    if (line.includes("not found")) {
      throw new Error(`Missing library for ${binary}: ${line.trim()}`);
    }
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m) libs.push(m[1]);
  }
  if (libs.length === 0) throw new Error(`ldd found no libraries for ${binary}`);
  return libs;
}

/** Adds host file `path` at the same absolute path, creating parent directories. */
async function addHostFile(writer: CpioWriter, path: string): Promise<void> {
  const parts = path.split("/").filter(Boolean);
  for (let i = 1; i < parts.length; i++) {
    const dir = parts.slice(0, i).join("/");
    if (!writer.has(dir)) writer.dir(dir);
  }
  if (writer.has(path)) return;
  const st = await Deno.stat(path);
  writer.file(path, await Deno.readFile(path), { perm: (st.mode ?? 0o755) & 0o7777 });
}

/**
 * Libraries the VMM opens with dlopen that Deno itself does not link: libz
 * (VNC's ZRLE), liblzma, libzstd and liblz4 (unpacking a bzImage's kernel, in
 * vm/unpacked_kernel_source.ts). The L1 gets those this host has, under
 * their sonames, so the VMM behaves there as on the host.
 */
async function vmmLibraries(): Promise<{ host: string; path: string }[]> {
  const out: { host: string; path: string }[] = [];
  for (const soname of ["libz.so.1", "liblzma.so.5", "libzstd.so.1", "liblz4.so.1"]) {
    for (const dir of ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"]) {
      try {
        const host = await Deno.realPath(`${dir}/${soname}`);
        out.push({ host, path: `lib/x86_64-linux-gnu/${soname}` });
        break;
      } catch { /* try the next folder */ }
    }
  }
  return out;
}

/** Where the host's QEMU lives; the L1 gets it at the same path. */
export const L1_QEMU_BINARY = "/usr/bin/qemu-system-x86_64";

/**
 * Folders QEMU takes firmware and modules from (Debian resolves them relative
 * to the binary: bios-256k.bin, vgabios-stdvga.bin, linuxboot_dma.bin,
 * kvmvapic.bin, the NIC option ROMs). Their top-level files go in whole.
 */
export const L1_QEMU_DATA_DIRS: readonly string[] = [
  "/usr/share/qemu",
  "/usr/share/seabios",
  "/usr/lib/ipxe/qemu",
  "/usr/lib/x86_64-linux-gnu/qemu",
];

/** Options for {@linkcode buildL1Initramfs}. */
export interface L1ImageOptions {
  /**
   * Also carry the host's qemu-system-x86_64, its shared libraries and its
   * firmware, so QEMU can run with -enable-kvm inside the L1 (as a baseline
   * for benchmarks). Adds ~60 MB to the image; default false.
   */
  qemu?: boolean;
}

async function fileStamps(paths: readonly string[]): Promise<unknown[]> {
  return await Promise.all(paths.map(async (p) => {
    const st = await Deno.stat(p);
    return [p, st.size, st.mtime?.getTime()];
  }));
}

/** Host paths of QEMU, its libraries and the regular files in its data folders. */
async function qemuFiles(): Promise<string[]> {
  const files = [L1_QEMU_BINARY, ...await sharedLibraries(L1_QEMU_BINARY)];
  for (const dir of L1_QEMU_DATA_DIRS) {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const path = `${dir}/${e.name}`;
      // Symlinks (e.g. bios-microvm.bin -> qboot.rom) are stored as the file they name.
      if (e.isFile || (e.isSymlink && (await Deno.stat(path).catch(() => null))?.isFile)) {
        files.push(path);
      }
    }
  }
  return files;
}

/**
 * Builds (or finds cached) the L1 initramfs for `kernel`, carrying the shared
 * libraries that `denoBinary` needs (and, with `options.qemu`, QEMU). Returns
 * the cpio's path.
 *
 * @example
 * ```ts ignore
 * const initrd = await buildL1Initramfs(await debianKernel("amd64"), Deno.execPath());
 * ```
 */
export async function buildL1Initramfs(
  kernel: DebianKernel,
  denoBinary: string,
  options: L1ImageOptions = {},
): Promise<string> {
  const libs = await sharedLibraries(denoBinary);
  const vmmLibs = await vmmLibraries();
  const stamps = await fileStamps([...libs, ...vmmLibs.map((l) => l.host)]);
  const busybox = await debianPackage("busybox-static");
  const key: unknown[] = ["l1-v3", busybox, kernel.modulesDir, L1_MODULES, stamps, L1_INIT];
  const qemu = options.qemu ? await qemuFiles() : [];
  if (options.qemu) key.push("qemu-v1", await fileStamps(qemu));
  return await cachedCpio(key, async (w) => {
    await addBusyboxRoot(w);
    await addModules(w, kernel.modulesDir, L1_MODULES);
    for (const lib of libs) await addHostFile(w, lib);
    for (const lib of vmmLibs) {
      if (!w.has("lib")) w.dir("lib");
      if (!w.has("lib/x86_64-linux-gnu")) w.dir("lib/x86_64-linux-gnu");
      if (!w.has(lib.path)) w.file(lib.path, await Deno.readFile(lib.host), { perm: 0o644 });
    }
    for (const f of qemu) await addHostFile(w, f);
    w.file("init", L1_INIT, { perm: 0o755 });
  });
}
