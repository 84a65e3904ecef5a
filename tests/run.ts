/**
 * The project's test command (`deno task test`, `npm test`): unit tests here,
 * then the KVM tests on real KVM — directly where this host has hardware KVM,
 * otherwise inside the nested KVM host (tests/nested). A KVM test is never
 * skipped silently: without any route to KVM the run fails, and skipping
 * needs DENOVMM_SKIP_KVM=1, which is printed.
 *
 * Ends with the line `N passed, N failed`.
 *
 * Usage: deno run -A tests/run.ts [--unit-only | --kvm-only] [deno test filters...]
 *
 * @module
 */
import { kvmRoute } from "./nested/route.ts";
import { runKvmSuite } from "./nested/kvm_suite.ts";
import { defaultLanes } from "./nested/kvm_lanes.ts";
import { prepareKvmFixtures } from "./kvm/fixtures.ts";
import { ensureAptPackages } from "./fixtures/debian.ts";

const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const deno = Deno.execPath();

interface Tally {
  passed: number;
  failed: number;
  ok: boolean;
}

/** Sums deno test's summary lines (`ok | 5 passed | 0 failed`). */
export function tally(output: string): Tally {
  let passed = 0, failed = 0, seen = false;
  // deno-lint-ignore no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  for (
    const m of plain.matchAll(
      /^(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/gm,
    )
  ) {
    passed += Number(m[1]);
    failed += Number(m[2]);
    seen = true;
  }
  return { passed, failed, ok: seen };
}

async function runLocal(args: string[]): Promise<{ code: number; output: string }> {
  const child = new Deno.Command(deno, {
    args,
    cwd: repo,
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  }).spawn();
  let output = "";
  const dec = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    output += dec.decode(chunk, { stream: true });
  }
  const { code } = await child.status;
  return { code, output };
}

const argv = [...Deno.args];
const unitOnly = argv.includes("--unit-only");
const kvmOnly = argv.includes("--kvm-only");
const filters = argv.filter((a) => a !== "--unit-only" && a !== "--kvm-only");

let passed = 0, failed = 0;

const isTestFile = (a: string) => /_test\.ts$/.test(a);

/** The KVM test files to run: those named among the arguments, else all of tests/kvm. */
function kvmTestFiles(args: string[]): string[] {
  const named = args.filter(isTestFile);
  if (named.length > 0) return named;
  const files: string[] = [];
  for (const e of Deno.readDirSync(`${repo}/tests/kvm`)) {
    if (e.isFile && isTestFile(e.name)) files.push(`tests/kvm/${e.name}`);
  }
  return files.sort();
}

if (!kvmOnly) {
  // The peers some unit tests compare against (QEMU running the test guests,
  // the L1 image with QEMU inside, a real cpio, qemu-io for the image locks,
  // lz4 and bzip2 for the kernel payloads):
  // installed here, so a fresh machine runs those tests instead of ignoring them.
  await ensureAptPackages(["qemu-system-x86", "qemu-utils", "cpio", "lz4", "bzip2"]);
  console.log("== unit tests (no KVM needed)");
  const r = await runLocal([
    "test",
    "-A",
    "--no-check",
    "--ignore=tests/kvm,node_modules,.cache",
    ...filters,
  ]);
  const t = tally(r.output);
  passed += t.passed;
  failed += t.failed;
  if (r.code !== 0 && t.failed === 0) failed++; // crashed before reporting
}

if (!unitOnly) {
  if (Deno.env.get("DENOVMM_SKIP_KVM") === "1") {
    console.log("== KVM tests SKIPPED (DENOVMM_SKIP_KVM=1)");
  } else {
    // Downloads happen here, on the host: the nested host has no apt.
    await prepareKvmFixtures();
    const route = kvmRoute();
    const testArgs = ["test", "-A", "--no-check", "tests/kvm/", ...filters];
    let r: { code: number; output: string } | undefined;
    if (route === "direct") {
      console.log("== KVM tests, directly on this host's KVM");
      r = await runLocal(testArgs);
    } else {
      const lanes = defaultLanes();
      console.log(
        `== KVM tests, inside nested KVM hosts (no hardware KVM here), ${lanes} at once`,
      );
      const suite = await runKvmSuite(kvmTestFiles(filters), {
        testArgs: filters.filter((f) => !isTestFile(f)),
        lanes,
      });
      for (const f of suite.finished) {
        const t = tally(f.output);
        passed += t.passed;
        failed += t.failed;
        if (!t.ok || (f.code !== 0 && t.failed === 0)) {
          console.error(
            `${f.file}: deno test exited ${f.code} without a failed test: counted as a failure`,
          );
          failed++;
        }
      }
      for (const f of suite.unfinished) {
        console.error(`${f}: never finished in a nested host: counted as a failure`);
        failed++;
      }
      if (suite.hostFailures.length > 0) {
        console.log(
          `== nested hosts that failed: ${suite.hostFailures.length} (${
            suite.hostFailures.join("; ")
          })`,
        );
      }
    }
    if (r) {
      const t = tally(r.output);
      passed += t.passed;
      failed += t.failed;
      if (!t.ok) {
        console.error("KVM tests produced no summary: counted as a failure");
        failed++;
      } else if (r.code !== 0 && t.failed === 0) failed++;
    }
  }
}

console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);
