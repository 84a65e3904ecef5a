/**
 * Files the KVM tests boot: Debian's stock kernel and the test initramfs.
 * `prepareKvmFixtures()` runs on the host before the KVM tests (which may
 * run inside the nested host, where apt is unavailable); inside, the same
 * calls find everything in .cache/.
 *
 * @module
 */
import {
  addBusyboxRoot,
  addModules,
  buildTestInitramfs,
  cachedCpio,
  debianKernel,
  gzipPayloadKernel,
  TEST_INIT,
  vmlinuxOf,
} from "../fixtures/mod.ts";
import { exec } from "../fixtures/_exec.ts";

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

/** Marker of the disk guest's report lines. */
export const DISK_MARKER = "DENOVMM-DISK";

/** Modules the disk guest loads (crc32c_generic: ext4's checksums need the algorithm). */
export const DISK_MODULES = ["crc32c_generic", "virtio_pci", "virtio_blk", "ext4"];

/**
 * The disk guest's script, chosen by `denovmm.disk=` on the command line:
 * `mkfs` makes an ext4 file system on /dev/vda and writes `data` (the
 * output of `seq 1 100000`); `check` prints the checksums of `data` and
 * `synced`; `kill` writes `synced` (`seq 1 50000`), syncs, reports, and
 * spins until the VMM is killed.
 */
export const DISK_SCRIPT = `
M=${DISK_MARKER}
mode=
for w in $(cat /proc/cmdline); do
  case "$w" in denovmm.disk=*) mode="\${w#denovmm.disk=}" ;; esac
done
echo "$M devices=$(ls /sys/block | tr '\n' ' ')"
echo "$M irqs=$(grep -c virtio /proc/interrupts)"
echo "$M queues=$(ls /sys/block/vda/mq 2>/dev/null | wc -l)"
case "$mode" in
mkfs)
  /usr/sbin/mke2fs -q -t ext4 -F /dev/vda || exit 1
  mount -t ext4 /dev/vda /mnt || exit 1
  seq 1 100000 > /mnt/data
  sync
  echo "$M written=$(md5sum < /mnt/data | cut -d' ' -f1)"
  umount /mnt || exit 1
  ;;
check)
  mount -t ext4 /dev/vda /mnt || exit 1
  echo "$M data=$(md5sum < /mnt/data | cut -d' ' -f1)"
  echo "$M synced=$(md5sum < /mnt/synced | cut -d' ' -f1)"
  umount /mnt || exit 1
  ;;
kill)
  mount -t ext4 /dev/vda /mnt || exit 1
  seq 1 50000 > /mnt/synced
  sync
  echo "$M synced-written=$(md5sum < /mnt/synced | cut -d' ' -f1)"
  while :; do :; done
  ;;
esac
`;

/** Host binaries added to the disk guest (with their shared libraries, from ldd). */
const DISK_BINARIES = ["/usr/sbin/mke2fs"];

/**
 * The disk guest's initramfs: the test /init, the virtio-blk and ext4
 * modules, and e2fsprogs' mke2fs with its libraries and loader taken from
 * this host (Debian bookworm userspace, like the guest kernel).
 *
 * @returns path of the cached cpio
 */
export async function diskInitramfs(): Promise<string> {
  const kernel = await debianKernel("amd64");
  // The host's files are read only when the image is built (on the host:
  // inside the nested host the cached image is found by this key).
  const key = ["disk-initramfs-v2", kernel.modulesDir, DISK_MODULES, DISK_SCRIPT, TEST_INIT];
  return await cachedCpio(key, async (w) => {
    const files = new Set<string>(["/etc/mke2fs.conf"]);
    for (const bin of DISK_BINARIES) {
      files.add(bin);
      const { stdout } = await exec("ldd", [bin]);
      for (const m of stdout.matchAll(/(\/\S+\.so[.\d]*)/g)) files.add(m[1]);
    }
    const contents: [string, Uint8Array][] = [];
    for (const f of [...files].sort()) contents.push([f, await Deno.readFile(f)]);
    await addBusyboxRoot(w);
    await addModules(w, kernel.modulesDir, DISK_MODULES);
    for (const [path, bytes] of contents) {
      const rel = path.replace(/^\//, "");
      const parts = rel.split("/");
      for (let i = 1; i < parts.length; i++) {
        const dir = parts.slice(0, i).join("/");
        if (!w.has(dir)) w.dir(dir);
      }
      w.file(rel, bytes, { perm: 0o755 });
    }
    if (!w.has("etc/denovmm")) w.dir("etc/denovmm");
    w.file("etc/denovmm/script", DISK_SCRIPT, { perm: 0o755 });
    w.file("init", TEST_INIT, { perm: 0o755 });
  });
}

/** The console test's /init script: echo one line typed on the host, then the CPU's name. */
export const ECHO_SCRIPT = 'read -r -t 120 line; echo "DENOVMM-ECHO [$line]"\n' +
  // The CPU's name as the guest's kernel reads it from CPUID's brand leaves.
  `echo "DENOVMM-CPU [$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)]"`;

/**
 * The test initramfs with {@link ECHO_SCRIPT}.
 *
 * @returns path of the cached cpio
 */
export async function echoInitramfs(): Promise<string> {
  return await buildTestInitramfs({ script: ECHO_SCRIPT });
}

/** The prompt of the smoke example's shell (examples/linux_smoke.ts). */
export const SMOKE_PROMPT = "smoke# ";

/**
 * The test initramfs whose script is an interactive shell on the console
 * (prompt {@link SMOKE_PROMPT}); /init powers off when it exits.
 *
 * @returns path of the cached cpio
 */
export async function smokeInitramfs(): Promise<string> {
  return await buildTestInitramfs({ script: `export PS1='${SMOKE_PROMPT}'\nexec sh -i\n` });
}

/** Marker of the VNC guest's report lines. */
export const VNC_MARKER = "DENOVMM-VNC";

/** Modules the VNC guest loads: the virtio tablet's driver and the evdev interface. */
export const VNC_MODULES = ["virtio_pci", "virtio_input", "evdev"];

/**
 * The guest: report the framebuffer, find the virtio tablet and read its
 * first four events (hex, as `struct input_event`s), start a shell on
 * tty1, wait for what it writes.
 */
export const VNC_SCRIPT = `
M=${VNC_MARKER}
echo "$M fb0=$(cat /sys/class/graphics/fb0/name 2>/dev/null) size=$(cat /sys/class/graphics/fb0/virtual_size 2>/dev/null)"
ev=
i=0
while [ -z "$ev" ] && [ $i -lt 20 ]; do
  for d in /sys/class/input/event*; do
    [ "$(cat $d/device/name 2>/dev/null)" = "QEMU Virtio Tablet" ] && [ -e /dev/input/\${d##*/} ] && ev=/dev/input/\${d##*/}
  done
  [ -z "$ev" ] && sleep 0.5
  i=$((i+1))
done
echo "$M tablet=[$ev] $(grep -c 'QEMU Virtio Tablet' /proc/bus/input/devices)"
if [ -n "$ev" ]; then
  ( dd if=$ev of=/tmp/ev bs=24 count=4 2>/dev/null; echo "$M tablet-events [$(od -An -v -tx1 /tmp/ev | tr -d ' \\n')]" ) &
  sleep 1 # dd has the device open before the host is told to point
fi
echo "denovmm framebuffer console: type here" > /dev/tty1
( sh < /dev/tty1 > /dev/tty1 2>&1 ) &
echo "$M shell-ready"
i=0
while [ ! -s /tmp/done ] && [ $i -lt 150 ]; do sleep 1; i=$((i+1)); done
echo "$M got [$(cat /tmp/done 2>/dev/null)]"
`;

/**
 * The VNC test's initramfs (tests/kvm/vnc_test.ts).
 *
 * @returns path of the cached cpio
 */
export async function vncInitramfs(): Promise<string> {
  return await buildTestInitramfs({ modules: VNC_MODULES, script: VNC_SCRIPT });
}

/** Marker of the PS/2 mouse guest's report lines. */
export const PS2_MARKER = "DENOVMM-PS2";

/**
 * The PS/2 mouse guest: psmouse (a module in the stock kernel) probes the
 * i8042's AUX port at load; the script finds the mouse's event device by its
 * name, reads its first seven events (hex) and reports them.
 */
export const PS2_SCRIPT = `
M=${PS2_MARKER}
ev=
i=0
while [ -z "$ev" ] && [ $i -lt 40 ]; do
  for d in /sys/class/input/event*; do
    case "$(cat $d/device/name 2>/dev/null)" in
      *PS/2*) [ -e /dev/input/\${d##*/} ] && ev=/dev/input/\${d##*/} ;;
    esac
  done
  [ -z "$ev" ] && sleep 0.5
  i=$((i+1))
done
echo "$M mouse=[$(grep -o 'Name="[^"]*PS/2[^"]*"' /proc/bus/input/devices)] ev=[$ev] tablets=$(grep -c 'Virtio Tablet' /proc/bus/input/devices)"
[ -n "$ev" ] || exit 0
( dd if=$ev of=/tmp/ev bs=24 count=7 2>/dev/null; echo "$M events [$(od -An -v -tx1 /tmp/ev | tr -d ' \\n')]"; touch /tmp/evdone ) &
sleep 1 # dd has the device open before the host is told to point
echo "$M ready"
i=0
while [ ! -f /tmp/evdone ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i+1)); done
`;

/**
 * The PS/2 mouse test's initramfs (tests/kvm/vnc_test.ts): psmouse and evdev.
 *
 * @returns path of the cached cpio
 */
export async function ps2MouseInitramfs(): Promise<string> {
  return await buildTestInitramfs({ modules: ["psmouse", "evdev"], script: PS2_SCRIPT });
}

/** Marker of the Bochs display guest's report lines. */
export const BOCHS_MARKER = "DENOVMM-BOCHS";

/**
 * The Bochs display guest: the stock `bochs` DRM driver (and what it needs)
 * loads at boot and takes the display over from efifb in the mode that
 * `video=` on the command line asks for; the guest reports fb0 and writes
 * on the console, then waits a little for the host to look.
 */
export const BOCHS_SCRIPT = `
M=${BOCHS_MARKER}
i=0
while [ "$(cat /sys/class/graphics/fb0/name 2>/dev/null)" != "bochs-drmdrmfb" ] && [ $i -lt 40 ]; do sleep 0.5; i=$((i+1)); done
echo "$M fb0=$(cat /sys/class/graphics/fb0/name 2>/dev/null) size=$(cat /sys/class/graphics/fb0/virtual_size 2>/dev/null)"
i=0
while [ $i -lt 20 ]; do echo "denovmm on the bochs display, line $i" > /dev/tty1; i=$((i+1)); done
echo "$M drawn"
sleep 15
`;

/**
 * The Bochs display test's initramfs (tests/kvm/vnc_test.ts).
 *
 * @returns path of the cached cpio
 */
export async function bochsInitramfs(): Promise<string> {
  return await buildTestInitramfs({ modules: ["bochs"], script: BOCHS_SCRIPT });
}

/** Host libraries the VMM may dlopen that the nested host lacks (libz for VNC's ZRLE). */
export const HOST_LIB_DIR: string = new URL("../../.cache/hostlib", import.meta.url).pathname;

async function copyHostLibs(): Promise<void> {
  await Deno.mkdir(HOST_LIB_DIR, { recursive: true });
  for (const lib of ["/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1"]) {
    try {
      await Deno.copyFile(await Deno.realPath(lib), `${HOST_LIB_DIR}/libz.so.1`);
      return;
    } catch { /* try the next place */ }
  }
}

/** What the power-button guest prints when acpid runs, and when it got the button. */
export const ACPID_READY = "DENOVMM-ACPID-READY";
/** Printed by the guest's power-button action before it powers off. */
export const POWER_BUTTON_SEEN = "DENOVMM-POWERBUTTON";

/**
 * The test initramfs with Linux's ACPI button driver and evdev loaded and
 * busybox `acpid` running, whose power-button action prints
 * {@link POWER_BUTTON_SEEN} and powers off.
 *
 * @returns path of the cached cpio
 */
export async function acpidInitramfs(): Promise<string> {
  return await buildTestInitramfs({
    modules: ["button", "evdev"],
    script: [
      "mkdir -p /etc/acpi/PWRF",
      // acpid runs as a daemon with its stdio on /dev/null: say it on the console.
      `printf '#!/bin/sh\\necho ${POWER_BUTTON_SEEN} > /dev/console\\npoweroff -f\\n' > /etc/acpi/PWRF/00000080`,
      "chmod 755 /etc/acpi/PWRF/00000080",
      // -d: in the foreground, logging to the console (as a daemon busybox
      // acpid logs to /var/log/acpid.log, which this initramfs lacks: it dies).
      "acpid -d &",
      "sleep 2", // let it open the input devices before the host presses the button
      // What acpid listens to, for the log when the test fails.
      "echo \"DENOVMM-INPUT $(cat /sys/class/input/*/name 2>/dev/null | tr '\\n' ',')\"",
      `echo ${ACPID_READY}`,
      "sleep 600",
      "",
    ].join("\n"),
  });
}

/** Everything the KVM tests need, made ready on this host. */
export async function prepareKvmFixtures(): Promise<void> {
  await linuxFixture();
  await debianKernel("cloud-amd64"); // kernel_unpack_test: an LZ4 payload
  await gzipPayloadKernel((await debianKernel("amd64")).vmlinuz); // and a gzip one
  await echoInitramfs();
  await diskInitramfs();
  await smokeInitramfs();
  await vncInitramfs();
  await ps2MouseInitramfs();
  await bochsInitramfs();
  await copyHostLibs();
  await acpidInitramfs();
}
