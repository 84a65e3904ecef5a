// Debian's stock kernel under `main.ts --nic tap,... --console virtio`
// (virtio-rng on by default): the guest configures eth0 on a tap, pings the
// host, sends and receives a TCP stream checked by MD5 against a host-side
// peer, reads 64 bytes from /dev/hwrng, and runs a shell on hvc0 that
// answers a command typed on the VMM's stdin. With vhost=off, and again
// with vhost=on where the host has vhost-net (modules loaded from the
// kernel's tree, as in the nested host). The vhost=on guest has two vCPUs
// and moves the virtio-net interrupts between them all through the TCP
// streams: each move rewrites the vector's MSI-X message, which Linux does
// with the vector masked, while vhost keeps signalling its irqfd. Then it
// unbinds and rebinds virtio_net (MSI-X off and on again, vhost reset and
// restarted) and pings once more.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { buildTestInitramfs, INIT_MARKER } from "../fixtures/initramfs.ts";
import { linuxFixture } from "./fixtures.ts";
import { runVmm, typeUntilAnswered } from "./_vmm_process.ts";
import { ensureHostModules, HOST_IP, hostTap, peers, removeTap, TAP } from "./_net_host.ts";
import { vhostNetAvailable } from "../../devices/virtio/vhost_net.ts";

/** Marker of the guest's report lines. */
export const NET_MARKER = "DENOVMM-NET";
/** Guest modules: virtio-pci transport, net, rng, console (dependencies follow). */
export const NET_MODULES = ["virtio_pci", "virtio_net", "virtio_rng", "virtio_console"];
const SEQ_N = 200000;

/**
 * Sends the virtio-net vectors back and forth between CPU 0 and CPU 1
 * (smp_affinity) until /tmp/stop exists, 20 rounds at least; the number of
 * rounds goes to /tmp/moves.
 */
const MOVE_IRQS = `
NETIRQS=$(grep -E 'virtio[0-9]+-(input|output)[.]0' /proc/interrupts | cut -d: -f1 | tr -d ' ')
echo "$M netirqs=$(echo $NETIRQS | tr ' ' ,)"
( i=0
  while [ ! -e /tmp/stop ] || [ $i -lt 20 ]; do
    for n in $NETIRQS; do echo $((1 + i % 2)) > /proc/irq/$n/smp_affinity; done
    i=$((i + 1))
    sleep 0.05
  done
  echo $i > /tmp/moves ) &
`;

/** 20 pings while the vectors still move; stops the mover, reports per-CPU counts, rebinds virtio_net and pings. */
const MOVED_AND_REBIND = `
ping -c 20 -i 0.05 -W 5 ${HOST_IP} > /tmp/ping3 2>&1
echo "$M moving-ping=$(grep -o '[0-9]* packets received' /tmp/ping3 | cut -d' ' -f1)"
touch /tmp/stop
wait
echo "$M moves=$(cat /tmp/moves)"
for n in $NETIRQS; do
  L=$(grep "^ *$n:" /proc/interrupts)
  set -- $L
  echo "$M irq-$n=$2/$3 name-$n=$(echo "$L" | grep -o 'virtio[0-9]*-[a-z]*')"
done
D=$(basename $(readlink -f /sys/class/net/eth0/device))
echo $D > /sys/bus/virtio/drivers/virtio_net/unbind
echo $D > /sys/bus/virtio/drivers/virtio_net/bind
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
if ping -c 3 -W 5 ${HOST_IP} > /tmp/ping2 2>&1; then echo "$M rebind-ping=ok"; else echo "$M rebind-ping=fail"; cat /tmp/ping2; fi
`;

/**
 * The guest's script (the test /init runs it after loading the modules).
 *
 * @param move add the vector moves and the driver rebind (the vhost=on run)
 * @returns the script
 */
export function netScript(move: boolean): string {
  return `
M=${NET_MARKER}
echo "$M ifaces=$(ls /sys/class/net | tr '\\n' ' ')"
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
if ping -c 3 -W 5 ${HOST_IP} > /tmp/ping 2>&1; then echo "$M ping=ok"; else echo "$M ping=fail"; cat /tmp/ping; fi
echo "$M rtt=$(grep -o 'min/avg/max = [0-9./]*' /tmp/ping | cut -d' ' -f3)"
seq 1 ${SEQ_N} > /tmp/out
${move ? MOVE_IRQS : ""}
nc ${HOST_IP} 5555 < /tmp/out && echo "$M sent=ok"
nc ${HOST_IP} 5556 > /tmp/in
echo "$M in-md5=$(md5sum < /tmp/in | cut -d' ' -f1) in-bytes=$(wc -c < /tmp/in)"
${move ? MOVED_AND_REBIND : ""}
echo "$M hwrng=$(head -c 64 /dev/hwrng | wc -c) rng=$(cat /sys/class/misc/hw_random/rng_current)"
if [ -c /dev/hvc0 ]; then
  echo "$M hvc=ready"
  timeout 60 sh -c 'sh < /dev/hvc0 > /dev/hvc0 2>&1'
  echo "$M hvc-shell-exit=$?"
else
  echo "$M hvc=missing"
fi
echo "$M stats=$(cat /sys/class/net/eth0/statistics/rx_packets)/$(cat /sys/class/net/eth0/statistics/tx_packets)"
`;
}

function md5(data: Uint8Array | string): string {
  return createHash("md5").update(data).digest("hex");
}

function seqText(n: number): string {
  const parts: string[] = [];
  for (let i = 1; i <= n; i++) parts.push(`${i}\n`);
  return parts.join("");
}

async function bootNet(vhost: boolean) {
  const f = await linuxFixture();
  const initrd = await buildTestInitramfs({ modules: NET_MODULES, script: netScript(vhost) });
  const toGuest = new TextEncoder().encode(seqText(SEQ_N / 2).split("").reverse().join(""));
  const p = peers(toGuest);
  const r = await runVmm(
    [
      "--kernel",
      f.kernel,
      "--initrd",
      initrd,
      "--append",
      "console=ttyS0 panic=-1 quiet",
      "--memory",
      "256M",
      "--cpus",
      vhost ? "2" : "1",
      "--nic",
      `tap,ifname=${TAP},vhost=${vhost ? "on" : "off"}`,
      "--console",
      "virtio",
    ],
    {
      stdin: true,
      timeoutMs: 400_000,
      onStdout: typeUntilAnswered(
        `${NET_MARKER} hvc=ready`,
        "echo hvc-answer-$((6*7))\n",
        "hvc-answer-42",
        "exit\n",
      ),
    },
  );
  const got = await Promise.race([
    p.received,
    new Promise<Uint8Array>((r) => setTimeout(() => r(new Uint8Array(0)), 1000)),
  ]);
  p.close();
  const stdout = r.stdout;
  // key=value pairs on the marker's lines ("hwrng=64 rng=virtio_rng.0": rng is its own key).
  const report = (key: string) => {
    for (const line of stdout.split("\n")) {
      if (!line.startsWith(NET_MARKER)) continue;
      const m = line.match(new RegExp(`\\s${key}=(\\S*)`));
      if (m) return m[1];
    }
    return undefined;
  };
  return { ...r, got, toGuest, report };
}

function check(r: Awaited<ReturnType<typeof bootNet>>, label: string): void {
  const tail = `\n--- stdout ---\n${r.stdout.slice(-4000)}\n--- stderr ---\n${r.stderr}`;
  assert.match(r.report("ifaces") ?? "", /eth0/, `${label}: no eth0${tail}`);
  assert.equal(r.report("ping"), "ok", `${label}: ping${tail}`);
  assert.equal(r.report("sent"), "ok", `${label}: TCP send${tail}`);
  assert.equal(md5(r.got), md5(seqText(SEQ_N)), `${label}: guest->host stream${tail}`);
  assert.equal(r.report("in-md5"), md5(r.toGuest), `${label}: host->guest stream${tail}`);
  assert.equal(r.report("hwrng"), "64", `${label}: /dev/hwrng${tail}`);
  assert.match(r.report("rng") ?? "", /virtio_rng/, `${label}: rng_current${tail}`);
  assert.ok(r.stdout.includes("hvc-answer-42"), `${label}: hvc0 shell${tail}`);
  assert.ok(r.stdout.includes(`${INIT_MARKER} action=poweroff`), `${label}: power-off${tail}`);
  assert.equal(r.code, 0, `${label}: exit code${tail}`);
  console.log(`${label}: ${r.seconds.toFixed(1)} s, ping rtt ${r.report("rtt")} ms`);
}

/** The vhost=on extras: the vectors moved (and fired on both CPUs), and a rebound driver works. */
function checkMoves(r: Awaited<ReturnType<typeof bootNet>>): void {
  const tail = `\n--- stdout ---\n${r.stdout.slice(-4000)}\n--- stderr ---\n${r.stderr}`;
  const moves = Number(r.report("moves"));
  assert.ok(moves >= 20, `vhost=on: only ${moves} affinity rounds${tail}`);
  assert.equal(r.report("moving-ping"), "20", `vhost=on: pings while the vectors move${tail}`);
  const irqs = (r.report("netirqs") ?? "").split(",").filter((x) => x);
  assert.equal(irqs.length, 2, `vhost=on: virtio-net input/output vectors${tail}`);
  const rx = irqs.find((n) => /input/.test(r.report(`name-${n}`) ?? ""));
  assert.ok(rx, `vhost=on: no input vector${tail}`);
  const [cpu0, cpu1] = (r.report(`irq-${rx}`) ?? "").split("/").map(Number);
  assert.ok(cpu0 > 0 && cpu1 > 0, `vhost=on: RX interrupts on both CPUs (${cpu0}/${cpu1})${tail}`);
  assert.equal(r.report("rebind-ping"), "ok", `vhost=on: ping after rebinding virtio_net${tail}`);
  console.log(
    `vhost=on: ${moves} affinity rounds, RX interrupts ${cpu0}/${cpu1} on CPU 0/1, rebind ok`,
  );
}

Deno.test("virtio-net (vhost=off), virtio-rng and virtio-console in a stock Linux guest", async () => {
  await ensureHostModules();
  await hostTap();
  try {
    check(await bootNet(false), "vhost=off");
  } finally {
    removeTap();
  }
});

const noVhost = await (async () => {
  await ensureHostModules().catch(() => {});
  return vhostNetAvailable();
})();
if (noVhost) console.log(`vhost=on boot not run: ${noVhost}`);

Deno.test({
  name: "virtio-net with vhost=on: ping and TCP both ways through the kernel data path",
  ignore: noVhost !== null,
  fn: async () => {
    await hostTap();
    try {
      const r = await bootNet(true);
      check(r, "vhost=on");
      checkMoves(r);
    } finally {
      removeTap();
    }
  },
});
