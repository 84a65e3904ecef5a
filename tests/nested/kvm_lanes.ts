/**
 * How the KVM test files are shared among nested hosts that run at once
 * (kvm_suite.ts `lanes`).
 *
 * A nested host has one L1 CPU (kvm_suite.ts says why), which QEMU's
 * emulator runs on one host thread: one host keeps one core busy and leaves
 * the other of a 2-core machine nearly idle for the whole KVM suite (about
 * 14 minutes of CI). Two hosts, each with about half of the expected time,
 * use both.
 *
 * @module
 */

/**
 * Seconds each KVM test file took in a nested host with another host
 * running beside it (`deno test`'s own figure, the mean of two runs on
 * 2026-12-03; one file's time moves by up to 25% between runs), to balance
 * the lanes; a file not listed counts as {@link DEFAULT_FILE_SECONDS}. Only
 * the balance depends on them.
 */
export const KVM_FILE_SECONDS: Readonly<Record<string, number>> = {
  "tests/kvm/api_test.ts": 12,
  "tests/kvm/bar_overlap_test.ts": 39,
  "tests/kvm/crash_test.ts": 8,
  "tests/kvm/demo_test.ts": 8,
  "tests/kvm/disk_test.ts": 92,
  "tests/kvm/guests_test.ts": 10,
  "tests/kvm/kernel_unpack_test.ts": 140, // 84 measured, + the cloud and gzip kernels' boots
  "tests/kvm/linux_boot_test.ts": 65,
  "tests/kvm/net_test.ts": 84,
  "tests/kvm/pci_config_test.ts": 8,
  "tests/kvm/powerdown_test.ts": 15,
  "tests/kvm/process_test.ts": 162,
  "tests/kvm/qmp_test.ts": 217,
  "tests/kvm/smoke_example_test.ts": 20,
  "tests/kvm/vcpu_control_test.ts": 4,
  "tests/kvm/vnc_test.ts": 164,
};

/** Expected seconds of a file {@link KVM_FILE_SECONDS} does not list. */
export const DEFAULT_FILE_SECONDS = 30;

/**
 * What starting `deno test` for one file costs inside a nested host beyond
 * its tests (Deno's start and the file's modules under the emulator).
 */
const FILE_START_SECONDS = 5;

/**
 * Splits `files` into at most `lanes` lanes of about equal expected time
 * (longest file first, each to the lane with the least so far); each lane
 * keeps the files in the order given. No lane is empty.
 *
 * @param files the test files, relative to the repository root
 * @param lanes how many hosts will run at once
 * @param seconds each file's expected seconds
 * @returns the lanes, the one with the longest file first
 * @example
 * ```ts
 * import { splitIntoLanes } from "./kvm_lanes.ts";
 * const lanes = splitIntoLanes(["a", "b", "c"], 2, { a: 10, b: 6, c: 5 });
 * console.log(lanes); // [["a"], ["b", "c"]]
 * ```
 */
export function splitIntoLanes(
  files: readonly string[],
  lanes: number,
  seconds: Readonly<Record<string, number>> = KVM_FILE_SECONDS,
): string[][] {
  const n = Math.max(1, Math.min(Math.floor(lanes), files.length));
  const cost = (f: string) => (seconds[f] ?? DEFAULT_FILE_SECONDS) + FILE_START_SECONDS;
  const bins = Array.from({ length: n }, () => ({ total: 0, files: [] as string[] }));
  const byCost = [...files].sort((a, b) =>
    cost(b) - cost(a) || files.indexOf(a) - files.indexOf(b)
  );
  for (const f of byCost) {
    let least = bins[0];
    for (const b of bins) if (b.total < least.total) least = b;
    least.total += cost(f);
    least.files.push(f);
  }
  const order = (f: string) => files.indexOf(f);
  return bins.filter((b) => b.files.length > 0).map((b) =>
    b.files.sort((x, y) => order(x) - order(y))
  );
}

/** Memory each nested host is given (run_nested.ts's default), MiB. */
const HOST_MEMORY_MIB = 4096;

/**
 * Lanes for this machine: `DENOVMM_NESTED_LANES` when set (1 turns lanes
 * off), else one per core up to two, as far as the free memory holds a
 * host per lane with a gigabyte to spare.
 *
 * @returns how many nested hosts to run at once
 * @example
 * ```ts
 * import { defaultLanes } from "./kvm_lanes.ts";
 * console.log(defaultLanes() >= 1); // true
 * ```
 */
export function defaultLanes(): number {
  const set = Deno.env.get("DENOVMM_NESTED_LANES");
  if (set !== undefined && set !== "") {
    const n = Number(set);
    if (!Number.isInteger(n) || n < 1 || n > 8) {
      throw new RangeError(`DENOVMM_NESTED_LANES=${set}: expected a whole number from 1 to 8`);
    }
    return n;
  }
  const cores = navigator.hardwareConcurrency;
  const freeMiB = Deno.systemMemoryInfo().available / (1 << 20);
  const byMemory = Math.floor(freeMiB / (HOST_MEMORY_MIB + 1024));
  return Math.max(1, Math.min(2, cores, byMemory));
}
