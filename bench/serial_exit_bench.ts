/**
 * A serial exit's own cost in a vCPU thread, without KVM: the guest's THR
 * write through the UART model and the console flush at the end of the exit
 * (into /dev/null), as heap bytes and ns per exit, against the flush the VMM
 * made before (`writeAll` of a `subarray`, a BigInt length) in the same run.
 * A guest that prints takes one exit per byte (Linux's 8250 driver writes
 * THR a byte at a time), so a console-heavy boot makes tens of thousands;
 * target 0 bytes: hot paths allocate nothing.
 *
 * `deno run -A bench/serial_exit_bench.ts`: each variant in its own process
 * (bench/_serial_alloc.ts) with a 64 MiB young generation, 5 interleaved
 * processes each, medians.
 *
 * @module
 */
import { youngGenProbe } from "./_young_gen_probe.ts";

const VARIANTS = [
  ["this tree: ConsoleOutput.flush", "flush"],
  ["before: writeAll(fd, buf.subarray(0, n))", "writeAll"],
] as const;
const ROUNDS = 5;

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

const bytes = new Map<string, number[]>();
const ns = new Map<string, number[]>();
for (let r = 0; r < ROUNDS; r++) {
  for (const [, v] of VARIANTS) {
    const j = await youngGenProbe("./_serial_alloc.ts", [v]);
    ns.set(v, [...(ns.get(v) ?? []), Number(j.nsPerExit)]);
    if (!j.shrank) bytes.set(v, [...(bytes.get(v) ?? []), Number(j.bytesPerExit)]);
  }
}

console.log(
  `\nSerial exit (THR write + console flush into /dev/null), no KVM; medians of ${ROUNDS} ` +
    "processes; target 0 heap bytes per exit\n",
);
console.log("| path | heap bytes per exit | ns per exit | time vs this tree |");
console.log("|---|---|---|---|");
const mine = median(ns.get("flush")!);
for (const [name, v] of VARIANTS) {
  const b = bytes.get(v) ?? [];
  const t = median(ns.get(v)!);
  const bs = b.length > 0 ? median(b).toFixed(1) : "(a GC ran in every process)";
  console.log(`| ${name} | ${bs} | ${t.toFixed(0)} | ${(t / mine).toFixed(2)}x |`);
}
