/**
 * Memory: what the VMM holds beyond guest RAM when a Linux guest reaches
 * /init (target <= 45 MiB), broken down by class next to the floor (an empty
 * `deno run --allow-ffi` with as many empty Workers as the VMM has isolates),
 * and, without KVM, what each thread role adds.
 *
 *     deno run -A bench/memory_bench.ts
 *
 * The /init part needs KVM: it runs directly on hardware KVM, otherwise inside
 * the nested KVM host. `DENOVMM_MEMORY_BASE=<dir>` (a `git archive` copy of
 * another tree) adds that tree's VMM to the same run, interleaved.
 * `DENOVMM_MEMORY_ROUNDS=N` rounds (default 1 nested, 3 on hardware).
 * `DENOVMM_MEMORY_PART=roles|init` runs one part.
 *
 * @module
 */
import { kvmRoute } from "../tests/nested/route.ts";
import { runNested } from "../tests/nested/run_nested.ts";

const PART = Deno.env.get("DENOVMM_MEMORY_PART");
const NESTED = Deno.env.get("DENOVMM_NESTED") === "1";
const BASE = Deno.env.get("DENOVMM_MEMORY_BASE");
/** A `git archive` copy of this tree to run instead (so the tree can change meanwhile). */
const HEAD = Deno.env.get("DENOVMM_MEMORY_HEAD");
const HEAD_MAIN = HEAD ? `${HEAD}/main.ts` : undefined;
const ROUNDS = Number(Deno.env.get("DENOVMM_MEMORY_ROUNDS") ?? (NESTED ? 1 : 3));

if (PART !== "init" && !NESTED) {
  const { rolesTable } = await import("./_rss_roles.ts");
  await rolesTable();
}

if (PART !== "roles") {
  if (kvmRoute() === "nested") {
    console.log("\nNo hardware /dev/kvm here: the /init part runs inside the nested KVM host.");
    const abort = new AbortController();
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => abort.abort());
    }
    const env = [`DENOVMM_MEMORY_PART=init`, `DENOVMM_MEMORY_ROUNDS=${ROUNDS}`];
    if (BASE) env.push(`DENOVMM_MEMORY_BASE=${BASE}`);
    if (HEAD) env.push(`DENOVMM_MEMORY_HEAD=${HEAD}`);
    const r = await runNested(`${env.join(" ")} deno run --no-check -A bench/memory_bench.ts`, {
      stream: true,
      timeoutS: 300 + ROUNDS * 400,
      signal: abort.signal,
    });
    Deno.exit(r.code);
  }
  const { floor, printInitTable, vmmAtInit } = await import("./_rss_at_init.ts");
  type S = Awaited<ReturnType<typeof floor>>;
  // Warm-up, discarded: the module cache (a cold start also loads Deno's Node
  // layer to transpile), the page cache.
  await vmmAtInit(1, { main: HEAD_MAIN });
  if (BASE) await vmmAtInit(1, { main: `${BASE}/main.ts` });
  for (const cpus of [1, 2]) {
    const rows: [string, S[]][] = [
      [`empty deno run + ${cpus} empty Worker${cpus > 1 ? "s" : ""} (floor)`, []],
      ["the floor, start-up memory given back as the VMM does", []],
      ["denovmm", []],
    ];
    if (BASE) rows.push([`base (${BASE})`, []]);
    for (let r = 0; r < ROUNDS; r++) {
      rows[0][1].push(await floor(cpus));
      rows[1][1].push(await floor(cpus, { trim: true }));
      rows[2][1].push(await vmmAtInit(cpus, { main: HEAD_MAIN }));
      if (BASE) rows[3][1].push(await vmmAtInit(cpus, { main: `${BASE}/main.ts` }));
      console.error(`memory bench: ${cpus} vCPU round ${r + 1} done`);
    }
    console.log(
      `\n### At /init, ${cpus} vCPU${cpus > 1 ? "s" : ""} (Debian bzImage, busybox initramfs, ` +
        `256 MiB; median of ${ROUNDS}; target <= 45 MiB beyond guest RAM)\n`,
    );
    printInitTable(rows);
  }
}
