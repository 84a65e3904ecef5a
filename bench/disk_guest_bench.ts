/**
 * Disk throughput seen by a Linux guest: `dd` on /dev/vda inside Debian's
 * stock kernel, under denovmm (`--disk`, virtio-blk-pci, aio thread pool; the
 * queue on the main loop, the default, and on an iothread) and under QEMU (`-enable-kvm`, `-drive if=virtio`, same image), on the same
 * KVM in the same run, as a ratio of MB/s.
 *
 * Runs on hardware KVM directly, otherwise inside the nested KVM host (whose
 * L1 image then carries QEMU too). Numbers from the nested host measure the
 * emulated stack as much as the VMMs: compare the ratio, not the MB/s.
 *
 * @module
 */
import { kvmRoute } from "../tests/nested/route.ts";
import { runNested } from "../tests/nested/run_nested.ts";
import { L1_QEMU_BINARY } from "../tests/nested/l1_image.ts";
import { debianKernel } from "../tests/fixtures/debian.ts";
import { buildTestInitramfs } from "../tests/fixtures/initramfs.ts";

const REPO = new URL("..", import.meta.url).pathname;
const NESTED = Deno.env.get("DENOVMM_NESTED") === "1";
const MIB = Number(Deno.env.get("DENOVMM_DD_MIB") ?? 64);
const MARK = "DENOVMM-DD";
const SCRIPT = `
up() { cut -d' ' -f1 /proc/uptime; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
q=/sys/block/vda/queue
echo "${MARK} queue max_sectors_kb=$(cat $q/max_sectors_kb) max_segments=$(cat $q/max_segments) read_ahead_kb=$(cat $q/read_ahead_kb) nr_requests=$(cat $q/nr_requests) mq=$(ls /sys/block/vda/mq | wc -l)"
t0=$(up); dd if=/dev/vda of=/dev/null bs=1M count=${MIB} 2>/dev/null; t1=$(up)
echo "${MARK} read=$(secs $t0 $t1) stat=$(cat /sys/block/vda/stat | tr -s ' ' ',')"
t0=$(up); dd if=/dev/zero of=/dev/vda bs=1M count=${MIB} conv=fsync 2>/dev/null; t1=$(up)
echo "${MARK} write=$(secs $t0 $t1) stat=$(cat /sys/block/vda/stat | tr -s ' ' ',')"
`;

const kernel = (await debianKernel("amd64")).vmlinuz;
const initrd = await buildTestInitramfs({ modules: ["virtio_pci", "virtio_blk"], script: SCRIPT });

if (kvmRoute() === "nested") {
  console.log("No hardware /dev/kvm here: running this benchmark inside the nested KVM host.");
  const r = await runNested(`deno run --no-check -A bench/disk_guest_bench.ts`, {
    stream: true,
    qemu: true,
    timeoutS: 900,
  });
  Deno.exit(r.code);
}

/** What one VMM's guest measured. */
interface DdResult {
  read: number;
  write: number;
  /** The guest's queue limits line. */
  queue: string;
  /** Average request size the guest sent, KiB. */
  readKib: number;
  writeKib: number;
}

/** Average KiB per request from /sys/block/vda/stat (ios at i, sectors at i + 2). */
function avgKib(stat: string | undefined, i: number): number {
  const f = (stat ?? "").split(",").filter((x) => x !== "").map(Number);
  return f[i] > 0 ? (f[i + 2] * 512) / f[i] / 1024 : NaN;
}

async function run(cmd: string, args: string[]): Promise<DdResult> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: REPO,
    stdin: "null",
    signal: AbortSignal.timeout(300_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const read = /DENOVMM-DD read=([\d.]+)/.exec(text);
  const write = /DENOVMM-DD write=([\d.]+)/.exec(text);
  if (!read || !write) {
    throw new Error(
      `${cmd}: no dd report\n${text.slice(-2000)}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  const rs = /DENOVMM-DD read=[\d.]+ stat=(\S+)/.exec(text)?.[1];
  const ws = /DENOVMM-DD write=[\d.]+ stat=(\S+)/.exec(text)?.[1];
  return {
    read: Number(read[1]),
    write: Number(write[1]),
    queue: /DENOVMM-DD queue (.*)/.exec(text)?.[1] ?? "?",
    readKib: avgKib(rs, 0),
    writeKib: avgKib(ws, 4),
  };
}

/** QEMU, denovmm with the disk on its main loop (the default), and on an iothread. */
const VMMS = ["qemu", "denovmm", "denovmm-iothread"];
const dir = await Deno.makeTempDir({ prefix: "denovmm-dd-", dir: "/tmp" });
const image = `${dir}/disk.img`;
const cmdline = "console=ttyS0 quiet panic=-1";
const results: Record<string, DdResult> = {};
try {
  for (const vmm of VMMS) {
    // A fresh, fully allocated image each time, so both read the same blocks.
    await Deno.writeFile(image, new Uint8Array(MIB << 20));
    const qemu = await Deno.stat(L1_QEMU_BINARY).then(() => L1_QEMU_BINARY).catch(() =>
      "qemu-system-x86_64"
    );
    results[vmm] = vmm === "qemu"
      // deno-fmt-ignore
      ? await run(qemu, [
        "-enable-kvm", "-cpu", "host", "-nographic", "-no-reboot", "-m", "256",
        "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
        "-drive", `file=${image},if=virtio,format=raw`,
      ])
      // deno-fmt-ignore
      : await run(Deno.execPath(), [
        "run", "--no-check", "--allow-ffi", "main.ts", "--memory", "256M",
        "--kernel", kernel, "--initrd", initrd, "--append", cmdline,
        "--disk", vmm === "denovmm" ? image : `${image},iothread=0`,
      ]);
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

const mbs = (s: number) => s > 0 ? MIB / s : Infinity;
console.log(
  `KVM: ${
    NESTED ? "nested (kvm_amd inside QEMU TCG)" : "hardware"
  }; dd of ${MIB} MiB, 1 MiB blocks\n`,
);
console.log(
  "| guest dd | QEMU MB/s | denovmm MB/s | ratio | denovmm iothread=0 MB/s | ratio |",
);
console.log("|---|---|---|---|---|---|");
for (const k of ["read", "write"] as const) {
  const q = mbs(results.qemu[k]), d = mbs(results.denovmm[k]);
  const t = mbs(results["denovmm-iothread"][k]);
  console.log(
    `| ${k} (${k === "write" ? "conv=fsync" : "cold cache"}) | ${q.toFixed(1)} | ${
      d.toFixed(1)
    } | ${(d / q).toFixed(2)}x | ${t.toFixed(1)} | ${(t / q).toFixed(2)}x |`,
  );
}
console.log("\n| VMM | guest queue limits | avg read request KiB | avg write request KiB |");
console.log("|---|---|---|---|");
for (const vmm of VMMS) {
  const r = results[vmm];
  console.log(
    `| ${vmm} | ${r.queue} | ${r.readKib.toFixed(0)} | ${r.writeKib.toFixed(0)} |`,
  );
}
