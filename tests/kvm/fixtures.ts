/**
 * Files the KVM tests boot: Debian's stock kernel and the test initramfs.
 * `prepareKvmFixtures()` runs on the host before the KVM tests (which may
 * run inside the nested host, where apt is unavailable); inside, the same
 * calls find everything in .cache/.
 *
 * @module
 */
import { buildTestInitramfs, debianKernel, vmlinuxOf } from "../fixtures/mod.ts";

/** The Linux guest payload for boot tests. */
export interface LinuxFixture {
  /** Debian's bzImage. */
  kernel: string;
  /** The same kernel as an uncompressed vmlinux ELF. */
  vmlinux: string;
  /** Its release string. */
  release: string;
  /** The busybox test initramfs. */
  initrd: string;
}

/**
 * Downloads (once) and returns the kernel and initramfs.
 *
 * @returns paths
 */
export async function linuxFixture(): Promise<LinuxFixture> {
  const k = await debianKernel("amd64");
  const initrd = await buildTestInitramfs();
  const vmlinux = await vmlinuxOf(k.vmlinuz);
  return { kernel: k.vmlinuz, vmlinux, release: k.version, initrd };
}

/** Everything the KVM tests need, made ready on this host. */
export async function prepareKvmFixtures(): Promise<void> {
  await linuxFixture();
}
